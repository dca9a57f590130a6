"""Diagnostics of the encoder g1 for Section 3.1: how well conditioned it is, and whether it is
still exactly invertible.

- Conditioning (Section 3.1, "bias towards hard-to-invert encoders"; Figure 2c and Figure 5;
  experiment E3): at `num_inputs` (128) random training inputs x, the singular values of the
  Jacobian dg1/dx (GradientTape.batch_jacobian, then an SVD), each Jacobian summarised by its
  log condition number log(sigma_max / sigma_min). results.jsonl gets the percentiles
  0, 20, ..., 100 of the 128 values and the values themselves (the report pools them across
  the runs of a configuration before taking percentiles, as the paper does), TensorBoard
  their histogram. As in the paper the inputs are sampled afresh at each evaluation (drawn
  from the run's seed and the step, with the run's coupled noise).
- Reconstruction error (Section 3.1, experiments E1 and E2): for an encoder with an exact
  inverse, max |g1^-1(g1(x)) - x| over the first `num_inputs` test inputs. It stays at float32
  round-off while training changes g1: the evidence that the true MI is unchanged. Recorded
  with `invertible` (the error is below INVERTIBLE_TOLERANCE) and, for couplings with a
  scale, `min_scale`, the smallest scale on those inputs (near its 1e-7 floor float32 can no
  longer invert the map).

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
INVERTIBLE_TOLERANCE = 1e-4

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


def jacobian_inputs(dataset, num_inputs, seed, step=0):
  """`num_inputs` x_top of distinct random training images, with the dataset's coupled noise.

  A pure function of (dataset, num_inputs, seed, step): fresh inputs at each evaluation.
  """
  n = min(num_inputs, len(dataset.train))
  idx = np.sort(np.random.default_rng([seed, _JACOBIAN_STREAM, step]).choice(
      len(dataset.train), n, replace=False))
  x_top, x_bottom = data_lib.split_halves(dataset.train.images[idx])
  if dataset.noise_std > 0:
    noise_seed = tf.constant([seed + _JACOBIAN_STREAM, step], tf.int64)
    x_top, _ = data_lib.add_coupled_noise(x_top, x_bottom, dataset.noise_std, noise_seed)
  return x_top


class Diagnostics:
  """Computes the configured diagnostics of `encoder` (g1) at each evaluation."""

  def __init__(self, encoder, dataset, seed=0, config=None):
    self.encoder = encoder
    self.dataset = dataset
    self.seed = seed
    self.config = config or Settings()
    self.test_x = None
    if self.config.jacobian:
      self._jacobians = tf.function(lambda x: jacobians(encoder, x), reduce_retracing=True)
    if self.config.reconstruction and is_invertible(encoder):
      self.test_x = next(iter(data_lib.eval_batches(
          dataset.test, self.config.num_inputs, dataset.noise_std, noise_seed=seed)))[0]

  def __call__(self, step=0):
    """(numbers for results.jsonl, histograms {name: values} for TensorBoard) at `step`."""
    numbers, histograms = {}, {}
    t0 = time.perf_counter()
    if self.config.jacobian:
      x = jacobian_inputs(self.dataset, self.config.num_inputs, self.seed, step)
      values = log_condition_numbers(self._jacobians(x).numpy())
      numbers["jacobian_log_condition_percentiles"] = percentiles(values)
      numbers["jacobian_log_condition_numbers"] = [float(v) for v in values]
      histograms["jacobian/log_condition_number"] = values
    if self.test_x is not None:
      error = reconstruction_error(self.encoder, self.test_x)
      numbers["reconstruction_error"] = error
      numbers["invertible"] = bool(np.isfinite(error) and error < INVERTIBLE_TOLERANCE)
      if callable(getattr(self.encoder, "min_scale", None)):
        scale = self.encoder.min_scale(self.test_x)
        if scale is not None:
          numbers["min_scale"] = scale
    if numbers:
      shown = {k: v for k, v in numbers.items() if k != "jacobian_log_condition_numbers"}
      logging.info("diagnostics: %s (%.1f s)", shown, time.perf_counter() - t0)
    return numbers, histograms


