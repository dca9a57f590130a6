"""Known answers, bounds and invariances of the MI estimators."""

import math

import numpy as np
import pytest
import tensorflow as tf

from mi_repr_tf import estimators
from mi_repr_tf import registry
from mi_repr_tf.errors import ConfigError


def test_infonce_with_dominant_diagonal_is_log_k():
  k = 64
  scores = 1e4 * np.eye(k, dtype=np.float32)
  assert float(estimators.infonce(scores).value) == pytest.approx(math.log(k), abs=1e-5)


def test_infonce_of_constant_scores_is_zero():
  assert float(estimators.infonce(np.full((32, 32), 3.7, np.float32)).value) == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("scale", [0.1, 10.0, 1000.0])
def test_infonce_never_exceeds_log_k(seed, scale):
  rng = np.random.default_rng(seed)
  k = 17
  scores = scale * rng.standard_normal((k, k)).astype(np.float32)
  scores[np.diag_indices(k)] += scale  # favour positives
  assert float(estimators.infonce(scores).value) <= math.log(k) + 1e-5


def test_infonce_invariant_to_row_shifts():
  """S_ij + c_i leaves I_NCE unchanged (a critic is defined up to a function of x)."""
  rng = np.random.default_rng(0)
  scores = rng.standard_normal((9, 9)).astype(np.float32)
  shifted = scores + 50 * rng.standard_normal((9, 1)).astype(np.float32)
  assert float(estimators.infonce(shifted).value) == pytest.approx(float(estimators.infonce(scores).value),
                                                             abs=1e-4)


def _nwj_reference(scores):
  s = np.asarray(scores, np.float64)
  k = len(s)
  off = s[~np.eye(k, dtype=bool)]
  return np.mean(np.diag(s)) - np.exp(-1) * np.mean(np.exp(off))


def test_nwj_matches_closed_form_using_off_diagonal_only():
  rng = np.random.default_rng(1)
  scores = rng.standard_normal((11, 11)).astype(np.float32)
  assert float(estimators.nwj(scores).value) == pytest.approx(_nwj_reference(scores), rel=1e-5)
  # Changing the diagonal's marginal contribution must not matter: only mean diag enters.
  bumped = scores.copy()
  bumped[0, 0] += 1.0
  assert float(estimators.nwj(bumped).value) - float(estimators.nwj(scores).value) == pytest.approx(1 / 11,
                                                                                       rel=1e-4)


def test_nwj_is_computed_in_log_space():
  """Off-diagonal scores of 87: each exp fits in float32, their sum would overflow."""
  k = 128
  scores = np.full((k, k), 87.0, np.float32)
  np.fill_diagonal(scores, 0.0)
  value = float(estimators.nwj(scores).value)
  assert math.isfinite(value)
  assert value == pytest.approx(-math.exp(86.0), rel=1e-4)


def _gaussian_pair(rho, k, seed):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal(k)
  y = rho * x + math.sqrt(1 - rho**2) * rng.standard_normal(k)
  return x, y


def _log_density_ratio(x, y, rho):
  """log p(y | x) / p(y) for a standard bivariate Gaussian with correlation rho: [K, K]."""
  x, y = x[:, None], y[None, :]
  var = 1 - rho**2
  return -0.5 * math.log(var) - (y - rho * x)**2 / (2 * var) + y**2 / 2


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_nwj_with_optimal_critic_recovers_gaussian_mi(rho):
  true_mi = -0.5 * math.log(1 - rho**2)
  values = []
  for seed in range(8):
    x, y = _gaussian_pair(rho, 512, seed)
    scores = 1.0 + _log_density_ratio(x, y, rho)  # NWJ's optimum: 1 + log p(x,y)/p(x)p(y)
    values.append(float(estimators.nwj(scores.astype(np.float32)).value))
  assert np.mean(values) == pytest.approx(true_mi, abs=0.03)


def test_infonce_with_optimal_critic_is_close_below_gaussian_mi():
  rho = 0.5
  true_mi = -0.5 * math.log(1 - rho**2)
  values = [float(estimators.infonce(_log_density_ratio(*_gaussian_pair(rho, 512, s), rho)
                                     .astype(np.float32)).value) for s in range(8)]
  assert np.mean(values) == pytest.approx(true_mi, abs=0.02)
  assert np.mean(values) <= true_mi + 0.01


def test_estimators_are_differentiable():
  scores = tf.Variable(np.random.default_rng(0).standard_normal((6, 6)).astype(np.float32))
  for name in registry.names("estimator"):
    with tf.GradientTape() as tape:
      value = estimators.build(name)(scores).objective
    grad = tape.gradient(value, scores)
    assert grad is not None and np.all(np.isfinite(grad.numpy()))


def test_target_loss():
  bound = estimators.Bound(tf.constant(3.0), tf.constant(7.0))  # value 3, objective 7
  assert float(estimators.loss(bound, None)) == -7.0  # maximise the objective
  assert float(estimators.loss(bound, 2.0)) == 1.0  # |value - t|
  assert float(estimators.loss(estimators.Bound(tf.constant(1.5), 0.0), 2.0)) == 0.5


def test_unknown_estimator_names_the_key_and_the_choices():
  with pytest.raises(ConfigError, match=r"train.estimator='foo'.*'nce', 'nwj'"):
    estimators.build("foo")
