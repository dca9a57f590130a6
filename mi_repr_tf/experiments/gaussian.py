"""Section 4 and Appendix E (Figure 4c, experiment E6): MI estimation with non-i.i.d. batches.

(X, Y) = Z + eps with Z ~ N(0, Sigma_Z) and eps ~ N(0, Sigma_eps), both 2-dimensional (X the
first coordinate, Y the second). The true MI is that of N(0, Sigma_Z + Sigma_eps). A
non-i.i.d. batch draws a single Z and K i.i.d. eps, so all K pairs share Z; the i.i.d.
baseline draws each pair from N(0, Sigma_Z + Sigma_eps). A concat critic (5 hidden layers of
10 relu units) is trained with an estimator on such batches. The paper's observation: on
non-i.i.d. batches the estimates exceed the true MI, on i.i.d. batches they stay below it.

Every evaluation records `estimate`, the mean training-batch estimate since the previous
record (the smoothed curve of Figure 4c); `eval_estimate`, the mean over `eval_batches` fresh
batches drawn the same way (i.i.d. or not) from a fixed seed; and `true_mi`.
"""

import gin
import keras
import numpy as np
import tensorflow as tf

from mi_repr_tf import critics
from mi_repr_tf import estimators
from mi_repr_tf import model as model_lib
from mi_repr_tf import registry
from mi_repr_tf import runner
from mi_repr_tf.errors import ConfigError, check_int, check_number

_EVAL_STREAM = 0x0E7A1


def gaussian_mi(cov, x_dims=1):
  """MI in nats between the first `x_dims` coordinates and the rest of N(0, cov).

  I(X; Y) = 0.5 * log(det Sigma_X * det Sigma_Y / det Sigma); for a bivariate Gaussian with
  correlation rho this is -0.5 * log(1 - rho^2).
  """
  try:
    cov = np.asarray(cov, np.float64)
  except (TypeError, ValueError) as e:
    raise ConfigError(f"covariance {cov!r} is not a matrix of numbers") from e
  if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or not 0 < x_dims < cov.shape[0]:
    raise ConfigError(f"covariance of shape {cov.shape} cannot be split after {x_dims} dims")
  if (not np.all(np.isfinite(cov)) or not np.allclose(cov, cov.T)
      or np.linalg.eigvalsh(cov).min() <= 0):
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


@gin.configurable("gaussian")
def gaussian_settings(iid=False, estimator="nce", batch_size=128, learning_rate=1e-4,
                      cov_z=((1.0, -0.5), (-0.5, 1.0)), cov_eps=((1.0, 0.9), (0.9, 1.0)),
                      hidden_units=(10, 10, 10, 10, 10), eval_batches=100):
  """The Gaussian experiment's own settings.

  Args:
    iid: False for the paper's non-i.i.d. batches (one Z per batch), True for i.i.d. pairs.
    estimator: a registered estimator ('nce', 'nwj', ...).
    batch_size, learning_rate: the paper: batch 128, Adam 1e-4 (and 20,000 steps).
    cov_z, cov_eps: 2x2 covariances of Z and eps.
    hidden_units: the concat critic's hidden layers.
    eval_batches: batches averaged for `eval_estimate`.
  """
  registry.get("estimator", estimator, "gaussian.estimator")
  check_int("gaussian.batch_size", batch_size, 2)
  check_int("gaussian.eval_batches", eval_batches, 1)
  check_number("gaussian.learning_rate", learning_rate, 0, strictly=True)
  true_mi = gaussian_mi(np.add(cov_z, cov_eps))
  gaussian_mi(cov_z), gaussian_mi(cov_eps)  # both must be valid covariances
  return dict(iid=bool(iid), estimator=estimator, batch_size=batch_size,
              learning_rate=learning_rate, true_mi=true_mi, hidden_units=tuple(hidden_units),
              chol_z=np.linalg.cholesky(cov_z), chol_eps=np.linalg.cholesky(cov_eps),
              eval_batches=eval_batches)


@registry.register("experiment", "gaussian")
class Gaussian:
  """The Gaussian experiment for the run controller (see `runner`)."""

  dataset = None  # no images: no pixel baseline, no probe

  def __init__(self, settings, strategy):
    del strategy
    own = gaussian_settings()
    self.settings, self.own = settings, own
    self.model = model_lib.MIModel(g1=keras.layers.Identity(name="g1"),
                                   g2=keras.layers.Identity(name="g2"),
                                   critic=critics.ConcatCritic(own["hidden_units"],
                                                               name="critic"),
                                   estimator=estimators.build(own["estimator"],
                                                              "gaussian.estimator"))
    self.model((tf.zeros([2, 1]), tf.zeros([2, 1])))
    self.model.bound_and_loss(tf.zeros([2, 1]), tf.zeros([2, 1]))
    optimizer = keras.optimizers.Adam(own["learning_rate"])
    self.model.compile(optimizer=optimizer)
    optimizer.build(self.model.trainable_variables)
    self.checkpoint = {"model": self.model, "optimizer": optimizer}
    self.step_counter = optimizer.iterations
    chol_z = tf.constant(own["chol_z"], tf.float32)
    chol_eps = tf.constant(own["chol_eps"], tf.float32)
    seed, k, iid = settings.seed, own["batch_size"], own["iid"]

    def batch(stream, i):
      return sample_batch(tf.stack([tf.constant(seed + stream, tf.int64), i]), k, chol_z,
                          chol_eps, iid)

    @tf.function(jit_compile=settings.jit_compile)
    def train_loop(start, n):
      bounds = tf.TensorArray(tf.float32, size=n)
      losses = tf.TensorArray(tf.float32, size=n)
      for i in tf.range(n):
        out = self.model.train_step(batch(0, start + tf.cast(i, tf.int64)))
        bounds, losses = bounds.write(i, out["bound"]), losses.write(i, out["loss"])
      return losses.stack(), bounds.stack()

    @tf.function
    def eval_estimate():
      values = tf.TensorArray(tf.float32, size=own["eval_batches"])
      for i in tf.range(own["eval_batches"]):
        values = values.write(i, self.model.test_step(
            batch(_EVAL_STREAM, tf.cast(i, tf.int64)))["bound"])
      return tf.reduce_mean(values.stack())

    self._batch, self._train_loop, self._eval_estimate = batch, train_loop, eval_estimate

  def train(self, step, n):
    losses, bounds = self._train_loop(tf.constant(step + 1, tf.int64), tf.constant(n))
    return {"train_loss": losses.numpy(), "estimate": bounds.numpy()}

  def initial_losses(self, step):
    out = self.model.test_step(self._batch(0, tf.constant(step + 1, tf.int64)))
    return {"train_loss": float(out["loss"]), "estimate": float(out["bound"])}

  def measure(self, step):
    del step
    return runner.Measurement({"eval_estimate": float(self._eval_estimate()),
                               "true_mi": self.own["true_mi"]})
