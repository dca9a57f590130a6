"""Estimators that own variables: learned baselines (TUBA, I_alpha) and MINE's moving average.

Each is registered as a gin-configurable factory (`estimators.build(name)` calls it with no
arguments) returning either a plain function or a Keras layer. A layer is held by the model
(`MIModel.estimator`), so its variables are tracked, trained when trainable, and
checkpointed. A Keras layer must not itself be `@gin.configurable` (IndexError on
creation), hence the factories. gin values are read when the factory runs, i.e. when the
model is built, never inside a traced step.
"""

import math

import gin
import keras
import tensorflow as tf

from mi_repr_tf import estimators
from mi_repr_tf import registry
from mi_repr_tf.errors import ConfigError

BASELINES = ("constant", "learned")


class LearnedBaselineEstimator(keras.layers.Layer):
  """A bound whose log-baseline is a small network of the second view: log a(y).

  log a(y) = Dense(1)(relu(Dense(hidden)(y))) (Poole et al. 2019, Section 2.2: a(y) may be
  any positive function of y). Its variables are trainable: maximising the bound over a(y)
  tightens it.
  """

  def __init__(self, bound_fn, hidden, **kwargs):
    """bound_fn(scores, log_baseline [K]) -> Bound; hidden: units of the hidden layer."""
    super().__init__(**kwargs)
    self.bound_fn = bound_fn
    self.hidden = keras.layers.Dense(hidden, activation="relu", name="baseline_hidden")
    self.head = keras.layers.Dense(1, name="baseline_log_a")
    # The two Dense layers build themselves on the first call, when y's width is known
    # (`build_model` makes that call). Marked built so that the model, built before its
    # estimator is ever called, does not warn about unbuilt state.
    self.built = True

  def log_baseline(self, y):
    """log a(y_j) for every row y_j of y: [K]."""
    return self.head(self.hidden(y))[:, 0]

  def call(self, scores, y=None, training=False):
    del training
    if y is None:
      raise ValueError(f"{self.name}: a learned baseline needs y, the second view's "
                       "embeddings [K, d]")
    return self.bound_fn(scores, self.log_baseline(y))


def _with_baseline(key, bound_fn, baseline, log_baseline, hidden):
  """A (scores, y, training) -> Bound estimator for bound_fn with the chosen baseline."""
  if baseline == "learned":
    return LearnedBaselineEstimator(bound_fn, hidden, name=f"{key}_baseline")
  if baseline != "constant":
    raise ConfigError(f"{key}.baseline={baseline!r} is not valid; choose one of: "
                      + ", ".join(repr(b) for b in BASELINES))

  def constant_baseline(scores, y=None, training=False):
    del y, training
    return bound_fn(scores, log_baseline)

  return constant_baseline


@registry.register("estimator", "tuba")
@gin.configurable("tuba")
def tuba(baseline="constant", log_baseline=1.0, hidden=100):
  """TUBA (Poole et al. 2019, Section 2.2; see `estimators.tuba_bound`).

  Args:
    baseline: 'constant' (log a = `log_baseline`; 1.0 gives exactly NWJ) or 'learned'
      (log a(y) = Dense(1)(relu(Dense(hidden)(y))), trained with the rest).
    log_baseline: the constant log a.
    hidden: hidden units of the learned baseline.
  Returns:
    A callable (scores, y=None, training=False) -> Bound (a Keras layer when learned).
  """
  return _with_baseline("tuba", estimators.tuba_bound, baseline, log_baseline, hidden)


@registry.register("estimator", "interpolated")
@gin.configurable("interpolated")
def interpolated(alpha=0.01, baseline="constant", log_baseline=1.0, hidden=100):
  """Poole et al. 2019's I_alpha (Section 2.4, eq. 12; see `estimators.interpolated_bound`).

  Args:
    alpha: weight in [0, 1] of the leave-one-out (InfoNCE) mean in the baseline, as a
      probability, not a logit; 0.01 as in Poole et al.'s experiments (the notebook's
      alpha_logit = logit(0.01) = -4.595). alpha = 1 is InfoNCE over K - 1 samples,
      alpha = 0 is TUBA with the baseline below.
    baseline, log_baseline, hidden: a(y), as for `tuba`.
  Returns:
    A callable (scores, y=None, training=False) -> Bound (a Keras layer when learned).
  """
  if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
    raise ConfigError(f"interpolated.alpha={alpha!r} is not valid; it must be in [0, 1]")
  alpha = float(alpha)

  def bound_fn(scores, log_a):
    return estimators.interpolated_bound(scores, log_a, alpha)

  return _with_baseline("interpolated", bound_fn, baseline, log_baseline, hidden)


class MineEstimator(keras.layers.Layer):
  """MINE (Belghazi et al. 2018, "correcting the bias"): DV's value, bias-corrected gradient.

  m_t = rho m_{t-1} + (1 - rho) mean_{i != j} exp(S_ij) is a moving average over training
  steps; the objective's gradient replaces DV's grad lme_O(S) by
  grad(mean_O exp S) / m_t, where m_t already includes the current batch, and
  m_1 = the first batch's mean (flagged by `steps`). The state is kept in log space,
  `log_moving_average` = log m_t (exp would overflow), and updated only when
  training=True (a Python bool, as the model passes it); a training=False call uses the
  m_t the update would give, without storing it. Both variables are non-trainable and
  checkpointed with the model.

      value     = mean(d) - lme_O(S)
      objective = mean(d) - sg(lme_O(S)) - (exp(lme_O(S) - sg(log m_t)) - sg(same)),

  so objective == value numerically and grad objective = grad mean(d) -
  grad(mean_O exp S) / m_t. Under tf.distribute every replica computes the same m_t from the
  same global score matrix; the first replica's is kept.
  """

  def __init__(self, momentum=0.99, **kwargs):
    super().__init__(**kwargs)
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not (
        0 <= momentum <= 1):
      raise ConfigError(f"mine.momentum={momentum!r} is not valid; it must be in [0, 1]")
    self.momentum = float(momentum)
    self.log_moving_average = self.add_weight(
        shape=(), initializer="zeros", trainable=False, name="log_moving_average",
        aggregation="only_first_replica")
    self.steps = self.add_weight(shape=(), initializer="zeros", dtype="int64",
                                 trainable=False, name="steps",
                                 aggregation="only_first_replica")
    self.built = True  # all its state exists from the start

  def next_log_moving_average(self, log_batch_mean):
    """log m_t from log m_{t-1} and log mean_O exp(S) of this batch (no assignment)."""
    dtype = log_batch_mean.dtype
    previous = tf.cast(self.log_moving_average, dtype)
    log_rho = math.log(self.momentum) if self.momentum > 0 else -math.inf
    log_rest = math.log(1.0 - self.momentum) if self.momentum < 1 else -math.inf
    updated = tf.reduce_logsumexp(tf.stack([log_rho + previous, log_rest + log_batch_mean]))
    return tf.where(self.steps > 0, updated, log_batch_mean)

  def call(self, scores, y=None, training=False):
    del y
    positives = tf.reduce_mean(tf.linalg.diag_part(scores))
    lme = estimators.log_mean_exp_off_diagonal(scores)
    log_m = tf.stop_gradient(self.next_log_moving_average(lme))
    if training:
      self.log_moving_average.assign(tf.cast(log_m, self.log_moving_average.dtype))
      self.steps.assign_add(1)
    ratio = tf.exp(lme - log_m)  # mean_O exp(S) / m_t
    value = positives - lme
    objective = positives - tf.stop_gradient(lme) - (ratio - tf.stop_gradient(ratio))
    return estimators.Bound(value, objective)


@registry.register("estimator", "mine")
@gin.configurable("mine")
def mine(momentum=0.99):
  """MINE with moving-average rate `momentum` (rho in [0, 1]; see `MineEstimator`)."""
  return MineEstimator(momentum, name="mine")
