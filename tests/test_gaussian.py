"""E6: the analytic Gaussian MI, the (non-)i.i.d. samplers, and a short run."""

import math
import os

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from mi_repr_tf.experiments import gaussian
from mi_repr_tf import train
from mi_repr_tf.errors import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COV_Z = np.array([[1.0, -0.5], [-0.5, 1.0]])
COV_EPS = np.array([[1.0, 0.9], [0.9, 1.0]])


def test_paper_value_of_true_mi():
  rho = 0.4 / 2.0
  assert gaussian.gaussian_mi(COV_Z + COV_EPS) == pytest.approx(-0.5 * math.log(1 - rho**2))
  assert gaussian.gaussian_mi(COV_Z + COV_EPS) == pytest.approx(0.0204, abs=1e-4)


@pytest.mark.parametrize("cov", [[[2.0, 0.4], [0.4, 2.0]], [[1.0, 0.8], [0.8, 3.0]],
                                 [[0.5, -0.3], [-0.3, 0.4]]])
def test_true_mi_matches_an_independent_monte_carlo_estimate(cov):
  """E[log p(x, y) - log p(x) - log p(y)] over samples, with scipy's densities."""
  cov = np.array(cov)
  rng = np.random.default_rng(0)
  xy = rng.multivariate_normal([0, 0], cov, size=400_000)
  log_ratio = (stats.multivariate_normal([0, 0], cov).logpdf(xy)
               - stats.norm(0, math.sqrt(cov[0, 0])).logpdf(xy[:, 0])
               - stats.norm(0, math.sqrt(cov[1, 1])).logpdf(xy[:, 1]))
  assert gaussian.gaussian_mi(cov) == pytest.approx(log_ratio.mean(), abs=4e-3)


def test_block_formula_for_more_dimensions():
  """Independent blocks have zero MI whatever their size."""
  cov = np.block([[np.eye(2) * 2, np.zeros((2, 3))], [np.zeros((3, 2)), np.eye(3)]])
  assert gaussian.gaussian_mi(cov, x_dims=2) == pytest.approx(0.0, abs=1e-12)


def test_invalid_covariance_is_named():
  with pytest.raises(ConfigError, match="not symmetric positive definite"):
    gaussian.gaussian_mi([[1.0, 2.0], [2.0, 1.0]])


def _batches(iid, n):
  chol_z = tf.constant(np.linalg.cholesky(COV_Z), tf.float32)
  chol_eps = tf.constant(np.linalg.cholesky(COV_EPS), tf.float32)
  return [np.concatenate([t.numpy() for t in gaussian.sample_batch(
      tf.constant([3, i], tf.int64), 128, chol_z, chol_eps, iid)], axis=1) for i in range(n)]


def test_iid_batches_have_the_sum_covariance_within_a_batch():
  pooled = np.concatenate(_batches(True, 200))
  np.testing.assert_allclose(np.cov(pooled.T), COV_Z + COV_EPS, atol=0.05)
  within = np.mean([np.cov(b.T) for b in _batches(True, 200)], axis=0)
  np.testing.assert_allclose(within, COV_Z + COV_EPS, atol=0.05)


def test_non_iid_batches_share_z():
  """Within a batch only eps varies (covariance Sigma_eps); across batches Z does too."""
  batches = _batches(False, 400)
  within = np.mean([np.cov(b.T) for b in batches], axis=0)
  np.testing.assert_allclose(within, COV_EPS, atol=0.05)
  means = np.array([b.mean(axis=0) for b in batches])  # = Z + mean(eps)
  np.testing.assert_allclose(np.cov(means.T), COV_Z + COV_EPS / 128, atol=0.15)


def test_short_run_through_the_command_line_gin_file(tmp_path):
  gin_file = os.path.join(REPO, "gin", "noniid_gaussian.gin")
  bindings = ["run.num_steps=100", "run.eval_every=50", "gaussian.eval_batches=5",
              "gaussian.learning_rate=1e-3"]
  workdir, results = train.run([gin_file], bindings, str(tmp_path / "run"))
  assert [r["step"] for r in results] == [0, 50, 100]
  for r in results:
    assert r["true_mi"] == pytest.approx(0.0204, abs=1e-4)
    assert math.isfinite(r["estimate"]) and math.isfinite(r["eval_estimate"])
    assert r["estimate"] <= math.log(128) + 1e-5
  # Re-running the finished run changes nothing.
  _, again = train.run([gin_file], bindings, workdir)
  assert again == results
