"""Section 4 and Appendix E (Figure 4c, experiment E6): MI estimation with non-i.i.d. batches.

(X, Y) = Z + eps with Z ~ N(0, Sigma_Z) and eps ~ N(0, Sigma_eps), both 2-dimensional (X the
first coordinate, Y the second). The true MI is that of N(0, Sigma_Z + Sigma_eps). A
non-i.i.d. batch draws a single Z and K i.i.d. eps, so all K pairs share Z; the i.i.d.
baseline draws each pair from N(0, Sigma_Z + Sigma_eps). A concat critic (5 hidden layers of
10 relu units) is trained with InfoNCE or NWJ on such batches. The paper's observation: on
non-i.i.d. batches the estimates exceed the true MI, on i.i.d. batches they stay below it.
"""

import math
import time

from absl import logging
import gin
import keras
import numpy as np
import tensorflow as tf

from mi_repr_tf import critics
from mi_repr_tf import estimators
from mi_repr_tf import loop
from mi_repr_tf import model as model_lib
from mi_repr_tf.errors import ConfigError, check_choice

_EVAL_STREAM = 0x0E7A1


def gaussian_mi(cov, x_dims=1):
  """MI in nats between the first `x_dims` coordinates and the rest of N(0, cov).

  I(X; Y) = 0.5 * log(det Sigma_X * det Sigma_Y / det Sigma); for a bivariate Gaussian with
  correlation rho this is -0.5 * log(1 - rho^2).
  """
  cov = np.asarray(cov, np.float64)
  if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or not 0 < x_dims < cov.shape[0]:
    raise ConfigError(f"covariance of shape {cov.shape} cannot be split after {x_dims} dims")
  if not np.allclose(cov, cov.T) or np.linalg.eigvalsh(cov).min() <= 0:
    raise ConfigError(f"covariance {cov.tolist()} is not symmetric positive definite")
  logdet = lambda m: np.linalg.slogdet(m)[1]
  return 0.5 * (logdet(cov[:x_dims, :x_dims]) + logdet(cov[x_dims:, x_dims:]) - logdet(cov))


def sample_batch(seed, batch_size, chol_z, chol_eps, iid):
  """One batch (x [K, 1], y [K, 1]) drawn from the stateless `seed` ([2] int).

  iid=False: one Z for the whole batch plus K i.i.d. eps; iid=True: K i.i.d. draws of Z + eps.
  """
  seeds = tf.random.experimental.stateless_split(seed, 2)
  z_rows = batch_size if iid else 1
  z = tf.matmul(tf.random.stateless_normal([z_rows, 2], seeds[0]), chol_z, transpose_b=True)
  eps = tf.matmul(tf.random.stateless_normal([batch_size, 2], seeds[1]), chol_eps,
                  transpose_b=True)
  xy = z + eps
  return xy[:, :1], xy[:, 1:]


@gin.configurable("gaussian", denylist=["workdir", "log_every_secs"])
def train_gaussian(workdir,
                   iid=False,
                   estimator="nce",
                   num_steps=20000,
                   eval_every=1000,
                   batch_size=128,
                   learning_rate=1e-4,
                   cov_z=((1.0, -0.5), (-0.5, 1.0)),
                   cov_eps=((1.0, 0.9), (0.9, 1.0)),
                   hidden_units=(10, 10, 10, 10, 10),
                   eval_batches=100,
                   seed=0,
                   steps_per_loop=100,
                   log_every_secs=10.0):
  """Trains a concat critic on Gaussian pairs; records the estimate next to the true MI.

  Every `eval_every` steps results.jsonl gets: `estimate`, the mean training-batch estimate
  since the previous record (the smoothed curve of Figure 4c); `eval_estimate`, the mean over
  `eval_batches` fresh batches drawn the same way (i.i.d. or not) from a fixed seed; and
  `true_mi`.

  Args:
    workdir: the run directory.
    iid: False for the paper's non-i.i.d. batches (one Z per batch), True for i.i.d. pairs.
    estimator: 'nce' or 'nwj'.
    num_steps, eval_every, batch_size, learning_rate: schedule (the paper: 20,000 steps,
      batch 128, Adam 1e-4).
    cov_z, cov_eps: 2x2 covariances of Z and eps.
    hidden_units: the concat critic's hidden layers.
    eval_batches: batches averaged for `eval_estimate`.
    seed: seeds the critic's initialisation and every batch.
    steps_per_loop: training steps per compiled call.
    log_every_secs: console progress interval.
  """
  check_choice("gaussian.estimator", estimator, estimators.ESTIMATORS)
  for key, value in (("num_steps", num_steps), ("eval_every", eval_every),
                     ("batch_size", batch_size), ("eval_batches", eval_batches),
                     ("steps_per_loop", steps_per_loop)):
    if not isinstance(value, int) or value < (2 if key == "batch_size" else 1):
      raise ConfigError(f"gaussian.{key}={value!r} is not valid; it must be a positive integer"
                        + (" >= 2" if key == "batch_size" else ""))
  true_mi = gaussian_mi(np.add(cov_z, cov_eps))
  gaussian_mi(cov_z), gaussian_mi(cov_eps)  # both must be valid covariances
  chol_z = tf.constant(np.linalg.cholesky(cov_z), tf.float32)
  chol_eps = tf.constant(np.linalg.cholesky(cov_eps), tf.float32)

  keras.utils.set_random_seed(seed)
  tf.config.experimental.enable_op_determinism()
  model = model_lib.MIModel(g1=keras.layers.Identity(name="g1"),
                            g2=keras.layers.Identity(name="g2"),
                            critic=critics.ConcatCritic(hidden_units, name="critic"),
                            estimator=estimators.get_estimator(estimator))
  model((tf.zeros([2, 1]), tf.zeros([2, 1])))
  optimizer = keras.optimizers.Adam(learning_rate)
  model.compile(optimizer=optimizer)
  optimizer.build(model.trainable_variables)

  session = loop.RunSession(workdir, gin.operative_config_str(),
                            tf.train.Checkpoint(model=model, optimizer=optimizer),
                            optimizer.iterations)
  if session.finished(num_steps, with_embeddings=False):
    return session.results
  step = session.step

  def batch(stream, i):
    return sample_batch(tf.stack([tf.constant(seed + stream, tf.int64), i]), batch_size,
                        chol_z, chol_eps, iid)

  @tf.function(jit_compile=True)
  def train_step(i):
    return model.train_step(batch(0, i))["bound"]

  @tf.function
  def train_loop(start, n):
    bounds = tf.TensorArray(tf.float32, size=n)
    for i in tf.range(n):
      bounds = bounds.write(i, train_step(start + tf.cast(i, tf.int64)))
    return bounds.stack()

  @tf.function
  def eval_estimate():
    values = tf.TensorArray(tf.float32, size=eval_batches)
    for i in tf.range(eval_batches):
      values = values.write(i, model.test_step(batch(_EVAL_STREAM, tf.cast(i, tf.int64)))
                            ["bound"])
    return tf.reduce_mean(values.stack())

  logging.info("True MI %.5f nats; %s batches, %s", true_mi, "i.i.d." if iid else "non-i.i.d.",
               estimator)
  progress = loop.Progress(step, num_steps, log_every_secs)
  interval = []
  for next_eval in [s for s in loop.eval_steps(num_steps, eval_every) if s >= step]:
    while step < next_eval:
      n = min(steps_per_loop, next_eval - step)
      bounds = train_loop(tf.constant(step + 1, tf.int64), tf.constant(n)).numpy()
      loop.check_finite(bounds, step + 1, session.latest_checkpoint)
      interval.extend(bounds.tolist())
      step += n
      progress.update(step, -float(bounds[-1]))
    if step not in session.done:
      t0 = time.perf_counter()
      held_out = float(eval_estimate())
      if not interval:  # step 0: the initial critic on the first training batch
        interval = [float(model.test_step(batch(0, tf.constant(1, tf.int64)))["bound"])]
      record = {"step": step, "estimate": float(np.mean(interval)), "eval_estimate": held_out,
                "true_mi": true_mi, "train_loss": -float(np.mean(interval)),
                "eval_seconds": time.perf_counter() - t0}
      session.record(record, ("estimate", "eval_estimate", "true_mi", "train_loss"))
      logging.info("step %d: estimate %.4f  eval_estimate %.4f  true MI %.4f", step,
                   record["estimate"], held_out, true_mi)
    interval = []
    session.save(step)
  session.close()
  return session.results


def smoothed_final_estimate(results, last=5):
  """Mean of the last `last` recorded interval estimates (each already a mean over steps)."""
  values = [r["estimate"] for r in results[-last:]]
  return float(np.mean(values)) if values else math.nan
