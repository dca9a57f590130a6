"""Diagnostics of the encoder g1 for Section 3.1: how well conditioned it is, and whether it is
still exactly invertible.

- Conditioning (Section 3.1, "bias towards hard-to-invert encoders"; Figure 2c and Figure 5;
  experiment E3): at `num_inputs` (128) random training inputs x, the singular values of the
  Jacobian dg1/dx (GradientTape.batch_jacobian, then an SVD), each Jacobian summarised by its
  log condition number log(sigma_max / sigma_min). results.jsonl gets the percentiles
  0, 20, ..., 100 of the 128 values, TensorBoard their histogram. The inputs are the same at
  every evaluation of a run (drawn once from the run's seed, with the run's coupled noise), so
  the percentiles move only because g1 does.
- Reconstruction error (Section 3.1, experiments E1 and E2): for an encoder with an exact
  inverse, max |g1^-1(g1(x)) - x| over the first `num_inputs` test inputs. It stays at float32
  round-off while training changes g1: the evidence that the true MI is unchanged.

The functions at the top are pure (arrays in, numbers out); `Diagnostics` applies them to a
model at each evaluation.
"""

import dataclasses
import time

from absl import logging
import gin
import numpy as np
import tensorflow as tf

from mi_repr_tf import data as data_lib
from mi_repr_tf.errors import ConfigError

PERCENTILES = (0, 20, 40, 60, 80, 100)

# Keeps the random streams of the diagnostics apart from those of the data pipelines.
_JACOBIAN_STREAM = 0x5EED_0D1A


def log_condition_numbers(jacobians):
  """log(sigma_max / sigma_min) of each matrix in `jacobians` [N, m, n] -> float64 [N].

  The SVD runs in float64, so the result is exact for the given (float32) matrices; a singular
  matrix gives inf. (TensorFlow's SVD: numpy's was several times slower here, 128 x 392 x 392.)
  """
  singular_values = tf.linalg.svd(tf.constant(np.asarray(jacobians, np.float64)),
                                  compute_uv=False).numpy()  # descending
  with np.errstate(divide="ignore"):
    return np.log(singular_values[..., 0]) - np.log(singular_values[..., -1])


def percentiles(values, qs=PERCENTILES):
  """The `qs` percentiles of `values` as a list of floats (JSON-ready)."""
  return [float(v) for v in np.percentile(np.asarray(values, np.float64), qs)]


def jacobians(encoder, x):
  """Jacobians of `encoder` at each input of the batch x [N, ...]: [N, dim_out, dim_in].

  Examples are independent (no batch statistics), so batch_jacobian applies; the encoder runs
  with training=False.
  """
  x = tf.convert_to_tensor(x, tf.float32)
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = encoder(x, training=False)
  jac = tape.batch_jacobian(y, x)
  return tf.reshape(jac, (tf.shape(x)[0], tf.shape(y)[-1], -1))


def is_invertible(encoder):
  """Whether `encoder` exposes an exact inverse (as realnvp.RealNVPEncoder does)."""
  return callable(getattr(encoder, "inverse", None))


def reconstruction_error(encoder, x):
  """max |g^-1(g(x)) - x| over the batch x [N, ...], as a float."""
  x = tf.convert_to_tensor(x, tf.float32)
  x_back = encoder.inverse(encoder(x, training=False))
  return float(tf.reduce_max(tf.abs(tf.reshape(x_back, tf.shape(x)) - x)))


@dataclasses.dataclass(frozen=True)
class Settings:
  """What `Diagnostics` computes (see `settings`)."""
  jacobian: bool = False
  reconstruction: bool = True
  num_inputs: int = 128


@gin.configurable("diagnostics")
def settings(jacobian=False, reconstruction=True, num_inputs=128):
  """The diagnostics to compute at each evaluation.

  Args:
    jacobian: the log condition numbers of g1's Jacobian at `num_inputs` training inputs
      (experiment E3; on a 30-coupling RealNVP it is slow on a CPU).
    reconstruction: max |g1^-1(g1(x)) - x| on `num_inputs` test inputs, for invertible
      encoders only (ignored for the others).
    num_inputs: inputs per diagnostic (the paper: 128).
  """
  if not isinstance(num_inputs, int) or num_inputs < 1:
    raise ConfigError(f"diagnostics.num_inputs={num_inputs!r} is not valid; it must be an "
                      "integer >= 1")
  return Settings(bool(jacobian), bool(reconstruction), num_inputs)


def jacobian_inputs(dataset, num_inputs, seed):
  """`num_inputs` x_top of distinct random training images, with the dataset's coupled noise.

  A pure function of (dataset, num_inputs, seed).
  """
  n = min(num_inputs, len(dataset.train))
  idx = np.sort(np.random.default_rng([seed, _JACOBIAN_STREAM]).choice(
      len(dataset.train), n, replace=False))
  x_top, x_bottom = data_lib.split_halves(dataset.train.images[idx])
  if dataset.noise_std > 0:
    noise_seed = tf.constant([seed + _JACOBIAN_STREAM, 0], tf.int64)
    x_top, _ = data_lib.add_coupled_noise(x_top, x_bottom, dataset.noise_std, noise_seed)
  return x_top


class Diagnostics:
  """Computes the configured diagnostics of `encoder` (g1) at each evaluation."""

  def __init__(self, encoder, dataset, seed=0, config=None):
    self.encoder = encoder
    self.config = config or Settings()
    self.jacobian_x = None
    self.test_x = None
    if self.config.jacobian:
      self.jacobian_x = jacobian_inputs(dataset, self.config.num_inputs, seed)
      self._jacobians = tf.function(lambda x: jacobians(encoder, x))
    if self.config.reconstruction and is_invertible(encoder):
      self.test_x = next(iter(data_lib.eval_batches(
          dataset.test, self.config.num_inputs, dataset.noise_std, noise_seed=seed)))[0]

  def __call__(self):
    """(numbers for results.jsonl, histograms {name: values} for TensorBoard)."""
    numbers, histograms = {}, {}
    t0 = time.perf_counter()
    if self.jacobian_x is not None:
      values = log_condition_numbers(self._jacobians(self.jacobian_x).numpy())
      numbers["jacobian_log_condition_percentiles"] = percentiles(values)
      histograms["jacobian/log_condition_number"] = values
    if self.test_x is not None:
      numbers["reconstruction_error"] = reconstruction_error(self.encoder, self.test_x)
    if numbers:
      logging.info("diagnostics: %s (%.1f s)", numbers, time.perf_counter() - t0)
    return numbers, histograms


def write_summaries(numbers, histograms):
  """Writes diagnostics to the default summary writer (call inside `writer.as_default(step)`):
  the histograms, the reconstruction error and each condition-number percentile as scalars."""
  for name, values in histograms.items():
    tf.summary.histogram(name, values)
  for q, value in zip(PERCENTILES, numbers.get("jacobian_log_condition_percentiles", ())):
    tf.summary.scalar(f"jacobian/log_condition_p{q}", value)
  if "reconstruction_error" in numbers:
    tf.summary.scalar("reconstruction_error", numbers["reconstruction_error"])
