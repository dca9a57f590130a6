"""Variational lower bounds on mutual information, as pure functions of a score matrix.

Every estimator takes `scores`, a float tensor [K, K] with scores[i, j] = f(g1(x_i), g2(y_j))
for a batch of K positive pairs (x_i, y_i): positives on the diagonal, and the K(K-1)
off-diagonal entries act as samples from the product of marginals. It returns a scalar
estimate in nats. Training minimises -I_EST (Section 2, eq. (2)), or |I_EST - t| in
Section 3.3 (`target_loss`).
"""

import math

import tensorflow as tf

from mi_repr_tf.errors import check_choice


def infonce(scores):
  """InfoNCE (Section 2, eq. (3)): log K + mean_i (S_ii - logsumexp_j S_ij).

  Always <= log K, whatever the scores.

  Args:
    scores: [K, K] score matrix, positives on the diagonal.
  Returns:
    Scalar I_NCE in nats.
  """
  scores = tf.convert_to_tensor(scores)
  k = tf.cast(tf.shape(scores)[0], scores.dtype)
  positives = tf.linalg.diag_part(scores)
  return tf.math.log(k) + tf.reduce_mean(positives - tf.reduce_logsumexp(scores, axis=1))


def _log_mean_exp_off_diagonal(scores):
  """log( mean_{i != j} exp(S_ij) ), computed in log space."""
  k = tf.shape(scores)[0]
  k_float = tf.cast(k, scores.dtype)
  off_diagonal = tf.where(tf.eye(k, dtype=tf.bool),
                          tf.constant(-math.inf, scores.dtype), scores)
  return tf.reduce_logsumexp(off_diagonal) - tf.math.log(k_float * (k_float - 1.0))


def nwj(scores):
  """NWJ (Section 2, eq. (4)): mean_i S_ii - e^-1 mean_{i != j} exp(S_ij).

  As the authors' notebook: NWJ(S) = TUBA(S - 1), TUBA(S) = 1 + mean diag(S) -
  exp(logmeanexp over the off-diagonal of S); the marginal term uses the K(K-1)
  off-diagonal pairs only and is computed in log space.

  Args:
    scores: [K, K] score matrix, positives on the diagonal (K >= 2).
  Returns:
    Scalar I_NWJ in nats.
  """
  scores = tf.convert_to_tensor(scores)
  positives = tf.reduce_mean(tf.linalg.diag_part(scores))
  return positives - tf.exp(_log_mean_exp_off_diagonal(scores) - 1.0)


ESTIMATORS = {
    "nce": infonce,
    "nwj": nwj,
}


def get_estimator(name):
  """The estimator function registered under `name` ('nce' or 'nwj')."""
  return ESTIMATORS[check_choice("train.estimator", name, ESTIMATORS)]


def target_loss(estimate, target):
  """Section 3.3: L_t = |I_EST - t|; `target=None` means plain maximisation, -I_EST."""
  if target is None:
    return -estimate
  return tf.abs(estimate - target)
