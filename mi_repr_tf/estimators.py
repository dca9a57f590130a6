"""Variational bounds on mutual information, as functions of a score matrix.

Every estimator takes `scores`, a float tensor [K, K] with scores[i, j] = f(g1(x_i), g2(y_j))
for a batch of K positive pairs (x_i, y_i): positives on the diagonal, and the K(K-1)
off-diagonal entries act as samples from the product of marginals. It also takes `y`, the [K, d]
embeddings of the second view (for a baseline a(y), see TUBA), and `training` (whether this
is a training step: an estimator with state, e.g. a moving average, updates it only then). It returns a `Bound`:

- `value`: the MI estimate in nats that is reported (test bound, figures, table);
- `objective`: what training maximises. For InfoNCE and NWJ the two are the same tensor; an
  estimator may train one objective and report another (e.g. JS trains the f-GAN
  Jensen-Shannon objective and reports the NWJ value of the same critic), so a new
  estimator never needs a change to the model.

Defining an estimator registers it: `@estimator("name")` on a function
`fn(scores, y=None, training=False, **params)` makes it gin-configurable under `name` (its parameters are
bindings, e.g. `smile.tau = 5.0`) and selectable by `train.estimator = 'name'`. An estimator
with state (variables, e.g. a moving average) is registered as a factory returning a Keras
layer: `registry.register("estimator", name)(factory)`; the model holds the layer, so its
variables are checkpointed.

Training minimises -objective (Section 2, eq. (2)), or |value - t| in Section 3.3
(`loss`).
"""

import math
from typing import NamedTuple

import gin
import tensorflow as tf

from mi_repr_tf import registry


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


def loss(bound, target=None):
  """The training loss of a Bound: -objective, or Section 3.3's L_t = |value - t|."""
  if target is None:
    return -bound.objective
  return tf.abs(bound.value - target)
