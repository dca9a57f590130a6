"""Variational bounds on mutual information, as functions of a score matrix.

Every estimator takes `scores`, a float tensor [K, K] with scores[i, j] = f(g1(x_i), g2(y_j))
for a batch of K positive pairs (x_i, y_i): positives on the diagonal, and the K(K-1)
off-diagonal entries act as samples from the product of marginals. It also takes `y`, the
[K, d] embeddings of the second view (for a baseline a(y), see TUBA), and `training` (whether
this is a training step: an estimator with state, e.g. a moving average, updates it only
then). It returns a `Bound`:

- `value`: the MI estimate in nats that is reported (test bound, figures, table);
- `objective`: what training maximises. For InfoNCE and NWJ the two are the same tensor; an
  estimator may train one objective and report another (e.g. JS trains the f-GAN
  Jensen-Shannon objective and reports the NWJ value of the same critic), so a new
  estimator never needs a change to the model.

Defining an estimator registers it: `@estimator("name")` on a function
`fn(scores, y=None, training=False, **params)` makes it gin-configurable under `name` (its
parameters are bindings, e.g. `smile.tau = 5.0`) and selectable by
`train.estimator = 'name'`. An estimator with state (variables, e.g. a moving average) is
registered as a factory returning a Keras layer: `registry.register("estimator", name)(factory)`;
the model holds the layer, so its variables are checkpointed.

Here: 'nce' (InfoNCE), 'nwj', 'dv' (Donsker-Varadhan), 'js' (f-GAN Jensen-Shannon), 'smile'
(Song & Ermon 2020); in `estimators_stateful`: 'tuba' and 'interpolated' (Poole et al. 2019,
constant or learned baseline) and 'mine' (Belghazi et al. 2018, a moving average as state).
The bound functions `tuba_bound` and `interpolated_bound` take the log-baseline explicitly.

Training minimises -objective (Section 2, eq. (2)), or |value - t| in Section 3.3
(`loss`).
"""

import math
from typing import NamedTuple

import gin
import tensorflow as tf

from mi_repr_tf import registry
from mi_repr_tf.errors import ConfigError


class Bound(NamedTuple):
  """What an estimator returns: the reported `value` and the maximised `objective`."""
  value: tf.Tensor
  objective: tf.Tensor


def estimator(name):
  """Decorator: registers `fn(scores, y=None, training=False, **params) -> Bound` as `name`.

  The function becomes gin-configurable under `name`; the registry holds a factory that
  returns it (stateless estimators need no object of their own).
  """
  def decorator(fn):
    configurable = gin.configurable(name, denylist=["scores", "y", "training"])(fn)
    registry.register("estimator", name)(_Factory(configurable))
    return configurable
  return decorator


class _Factory:
  """A registry entry: called with no arguments, returns the estimator function."""

  def __init__(self, fn):
    self.fn = fn
    self.__qualname__ = getattr(fn, "__qualname__", repr(fn))

  def __call__(self):
    return self.fn


def build(name, key="train.estimator"):
  """A new estimator (a callable (scores, y, training) -> Bound) registered as `name`."""
  return registry.get("estimator", name, key)()


def log_mean_exp_off_diagonal(scores):
  """log( mean_{i != j} exp(S_ij) ), computed in log space (K >= 2)."""
  k = tf.shape(scores)[0]
  k_float = tf.cast(k, scores.dtype)
  off_diagonal = tf.where(tf.eye(k, dtype=tf.bool),
                          tf.constant(-math.inf, scores.dtype), scores)
  return tf.reduce_logsumexp(off_diagonal) - tf.math.log(k_float * (k_float - 1.0))


@estimator("nce")
def infonce(scores, y=None, training=False):
  """InfoNCE (Section 2, eq. (3)): log K + mean_i (S_ii - logsumexp_j S_ij).

  Always <= log K, whatever the scores.

  Args:
    scores: [K, K] score matrix, positives on the diagonal.
    y, training: unused.
  Returns:
    Bound with value = objective = I_NCE in nats.
  """
  del y, training
  scores = tf.convert_to_tensor(scores)
  k = tf.cast(tf.shape(scores)[0], scores.dtype)
  positives = tf.linalg.diag_part(scores)
  value = tf.math.log(k) + tf.reduce_mean(positives - tf.reduce_logsumexp(scores, axis=1))
  return Bound(value, value)


@estimator("nwj")
def nwj(scores, y=None, training=False):
  """NWJ (Section 2, eq. (4)): mean_i S_ii - e^-1 mean_{i != j} exp(S_ij).

  As the authors' notebook: NWJ(S) = TUBA(S - 1), TUBA(S) = 1 + mean diag(S) -
  exp(logmeanexp over the off-diagonal of S); the marginal term uses the K(K-1)
  off-diagonal pairs only and is computed in log space.

  Args:
    scores: [K, K] score matrix, positives on the diagonal (K >= 2).
    y, training: unused.
  Returns:
    Bound with value = objective = I_NWJ in nats.
  """
  del y, training
  scores = tf.convert_to_tensor(scores)
  positives = tf.reduce_mean(tf.linalg.diag_part(scores))
  value = positives - tf.exp(log_mean_exp_off_diagonal(scores) - 1.0)
  return Bound(value, value)


def _mean_off_diagonal(matrix):
  """mean_{i != j} M_ij of a [K, K] matrix (K >= 2), masking the diagonal (no cancellation)."""
  k = tf.shape(matrix)[0]
  k_float = tf.cast(k, matrix.dtype)
  masked = tf.where(tf.eye(k, dtype=tf.bool), tf.zeros_like(matrix), matrix)
  return tf.reduce_sum(masked) / (k_float * (k_float - 1.0))


def _per_column(log_baseline, scores):
  """log a(y_j) as a [K] vector: a scalar (constant baseline) is broadcast."""
  log_baseline = tf.cast(log_baseline, scores.dtype)
  return tf.broadcast_to(log_baseline, tf.shape(scores)[:1])


def tuba_bound(scores, log_baseline):
  """TUBA (Poole et al. 2019, Section 2.2), as SPEC.md writes it on the K x K matrix:

      1 + mean_i (S_ii - log a(y_i)) - mean_{i != j} exp(S_ij - log a(y_j)).

  The baseline belongs to the y of each pair, i.e. to column j (the vbmi notebook's critic
  puts y on the rows, hence its row-wise baseline). log a = 1 gives NWJ, log a = 0 the
  "NWJ at S + 1" that JS reports. The marginal term is computed in log space.

  Args:
    scores: [K, K] score matrix, S_ij = f(x_i, y_j), positives on the diagonal (K >= 2).
    log_baseline: log a(y): a scalar, or a [K] tensor indexed like the columns.
  Returns:
    Bound with value = objective = I_TUBA in nats.
  """
  scores = tf.convert_to_tensor(scores)
  log_a = _per_column(log_baseline, scores)
  joint = tf.reduce_mean(tf.linalg.diag_part(scores) - log_a)
  marginal = tf.exp(log_mean_exp_off_diagonal(scores - log_a[tf.newaxis, :]))
  value = 1.0 + joint - marginal
  return Bound(value, value)


@estimator("dv")
def donsker_varadhan(scores, y=None, training=False):
  """Donsker-Varadhan (Poole et al. 2019, Section 2.2): mean_i S_ii - lme_O(S).

  lme_O(S) = log mean_{i != j} exp(S_ij), in log space. Not a lower bound in expectation over
  batches (the log of a sample mean is biased); it is what MINE reports.

  Args:
    scores: [K, K] score matrix, positives on the diagonal (K >= 2).
    y, training: unused.
  Returns:
    Bound with value = objective = I_DV in nats.
  """
  del y, training
  scores = tf.convert_to_tensor(scores)
  value = tf.reduce_mean(tf.linalg.diag_part(scores)) - log_mean_exp_off_diagonal(scores)
  return Bound(value, value)


def js_objective(scores):
  """The f-GAN Jensen-Shannon objective (Nowozin et al. 2016; Hjelm et al. 2019):

      mean_i -softplus(-S_ii) - mean_{i != j} softplus(S_ij).

  Its optimal critic is log p(x, y) / (p(x) p(y)). It is not an MI estimate.
  """
  scores = tf.convert_to_tensor(scores)
  positives = tf.reduce_mean(-tf.nn.softplus(-tf.linalg.diag_part(scores)))
  return positives - _mean_off_diagonal(tf.nn.softplus(scores))


@estimator("js")
def js(scores, y=None, training=False):
  """JS: trains the f-GAN Jensen-Shannon objective, reports NWJ of the same critic.

  value = NWJ(S + 1) = TUBA(S) with log a = 0 = 1 + mean_i S_ii - exp(lme_O(S)), since the
  optimal JS critic is log p/(p_x p_y) and NWJ's is that plus 1 (as SPEC.md defines it; the
  value is tight at the optimal JS critic); objective = `js_objective(S)`. Poole et al.'s
  notebook (`js_lower_bound`) reports NWJ(S) instead, which is lower by
  1 - (1 - 1/e) mean_O exp(S): by 1/e at the optimal critic.

  Args:
    scores: [K, K] score matrix, positives on the diagonal (K >= 2).
    y, training: unused.
  Returns:
    Bound(value=NWJ(S + 1), objective=JS objective).
  """
  del y, training
  return Bound(tuba_bound(scores, 0.0).value, js_objective(scores))


@estimator("smile")
def smile(scores, y=None, training=False, tau=5.0):
  """SMILE (Song & Ermon 2020): DV of a clipped critic, trained with JS.

  value = mean_i S_ii - lme_O(clip(S, -tau, tau)) (the positives are not clipped);
  objective = `js_objective(S)`. tau = None: no clipping, i.e. DV's value.

  Args:
    scores: [K, K] score matrix, positives on the diagonal (K >= 2).
    y, training: unused.
    tau: the clipping threshold (> 0), or None.
  Returns:
    Bound(value=SMILE value, objective=JS objective).
  """
  del y, training
  if tau is not None and not tau > 0:
    raise ConfigError(f"smile.tau={tau!r} is not valid; it must be None or a number > 0")
  scores = tf.convert_to_tensor(scores)
  clipped = scores if tau is None else tf.clip_by_value(scores, -tau, tau)
  value = tf.reduce_mean(tf.linalg.diag_part(scores)) - log_mean_exp_off_diagonal(clipped)
  return Bound(value, js_objective(scores))


def log_mean_exp_leave_one_out(scores):
  """L[l, j] = log( mean_{k != l} exp(S_kj) ): per column j, the mean over the other rows.

  Exact and stable in log space: the sum over k < l and the sum over k > l are cumulative
  logsumexps down the column (no log(total - own term) cancellation). K >= 2.
  """
  scores = tf.convert_to_tensor(scores)
  k_float = tf.cast(tf.shape(scores)[0], scores.dtype)
  nothing = tf.fill(tf.shape(scores[:1]), tf.constant(-math.inf, scores.dtype))
  above = tf.concat([nothing, tf.math.cumulative_logsumexp(scores[:-1], axis=0)], axis=0)
  below = tf.concat([tf.math.cumulative_logsumexp(scores[1:], axis=0, reverse=True),
                     nothing], axis=0)
  return tf.reduce_logsumexp(tf.stack([above, below]), axis=0) - tf.math.log(k_float - 1.0)


def interpolated_bound(scores, log_baseline, alpha):
  """Poole et al. 2019's interpolated bound I_alpha (Section 2.4, eq. 12), on a K x K batch.

  For a y the baseline mixes the multi-sample mean of exp f(x_k, y) over a set of K - 1
  x's with a(y). Leave-one-out per column j (y_j fixed), l the left-out row:

      B[l, j] = log( alpha * mean_{k != l} exp(S_kj) + (1 - alpha) * a(y_j) ).

  Joint term: the positive (x_j, y_j) against the x's of column j without x_l, for every
  l != j (the set keeps x_j itself): mean_j mean_{l != j} (S_jj - B[l, j]).
  Marginal term: the pair (x_i, y_j), i != j, is independent of the other x's of column j
  without its own positive x_j (a set that includes x_i): mean_{i != j} exp(S_ij - B[j, j]).

      I_alpha = 1 + mean_{l != j} (S_jj - B[l, j]) - mean_{i != j} exp(S_ij - B[j, j]).

  alpha = 0 is TUBA with the baseline a; alpha = 1 makes the marginal term exactly 1 and
  leaves mean_j mean_{l != j} (S_jj - log mean_{k != l} exp S_kj), InfoNCE over K - 1
  samples (so <= log(K - 1)). This is the vbmi notebook's `interpolated_lower_bound` with
  its rows (y) as our columns.

  Args:
    scores: [K, K] score matrix, S_ij = f(x_i, y_j), positives on the diagonal (K >= 2).
    log_baseline: log a(y): a scalar, or a [K] tensor indexed like the columns.
    alpha: the mixture weight in [0, 1] of the leave-one-out mean (a Python float).
  Returns:
    Bound with value = objective = I_alpha in nats.
  """
  scores = tf.convert_to_tensor(scores)
  log_a = _per_column(log_baseline, scores)
  log_alpha = tf.math.log(tf.constant(alpha, scores.dtype))  # -inf at alpha = 0: fine
  log_rest = tf.math.log(tf.constant(1.0 - alpha, scores.dtype))
  log_b = tf.reduce_logsumexp(tf.stack([
      log_alpha + log_mean_exp_leave_one_out(scores),
      log_rest + tf.broadcast_to(log_a[tf.newaxis, :], tf.shape(scores))]), axis=0)
  joint = tf.reduce_mean(tf.linalg.diag_part(scores)) - _mean_off_diagonal(log_b)
  own_positive_left_out = tf.linalg.diag_part(log_b)
  marginal = tf.exp(log_mean_exp_off_diagonal(scores - own_positive_left_out[tf.newaxis, :]))
  value = 1.0 + joint - marginal
  return Bound(value, value)


def loss(bound, target=None):
  """The training loss of a Bound: -objective, or Section 3.3's L_t = |value - t|."""
  if target is None:
    return -bound.objective
  return tf.abs(bound.value - target)


# The estimators with a baseline network or with state (Keras layers) register themselves
# there; importing it here keeps `registry.get("estimator", ...)` complete.
# pylint: disable-next=wrong-import-position,unused-import
from mi_repr_tf import estimators_stateful  # noqa: E402,F401
