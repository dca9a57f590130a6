"""Critics: shapes, the (i, j) -> f(x_i, y_j) convention, and parameter counts."""

import numpy as np
import pytest

from mi_repr_tf import critics
from mi_repr_tf import registry
from mi_repr_tf.errors import ConfigError


def _xy(k1=5, k2=7, d=6, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.standard_normal((k1, d)).astype(np.float32),
          rng.standard_normal((k2, d)).astype(np.float32))


@pytest.mark.parametrize("name", registry.names("critic"))
def test_score_matrix_shape(name):
  x, y = _xy()
  scores = critics.build(name)(x, y)
  assert tuple(scores.shape) == (5, 7)


def test_inner_product():
  x, y = _xy()
  np.testing.assert_allclose(critics.build("inner_product")(x, y), x @ y.T, rtol=1e-5)


def test_bilinear_is_x_w_y():
  x, y = _xy()
  critic = critics.build("bilinear")
  scores = critic(x, y).numpy()
  np.testing.assert_allclose(scores, x @ critic.w.numpy() @ y.T, rtol=1e-4, atol=1e-5)


def test_separable_is_dot_product_of_embeddings():
  x, y = _xy()
  critic = critics.build("separable")
  scores = critic(x, y).numpy()
  expected = critic.phi1(x).numpy() @ critic.phi2(y).numpy().T
  np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("hidden_units", [(200,), (10, 10, 10, 10, 10)])
def test_concat_entry_ij_scores_x_i_with_y_j(hidden_units):
  x, y = _xy(d=4)
  critic = critics.ConcatCritic(hidden_units)
  scores = critic(x, y).numpy()
  kernel = critic.first_layer_kernel().numpy()
  bias = critic.b.numpy()
  for i, j in [(0, 0), (2, 5), (4, 1), (3, 6)]:
    pair = np.concatenate([x[i], y[j]])[None, :]  # phi([x_i, y_j]) by hand
    hidden = np.maximum(pair @ kernel + bias, 0)
    expected = critic.rest(hidden).numpy()[0, 0]
    assert scores[i, j] == pytest.approx(expected, rel=1e-4, abs=1e-5)


def _count(critic, d=100):
  x = np.zeros((2, d), np.float32)
  critic(x, x)
  return sum(int(np.prod(v.shape)) for v in critic.trainable_weights)


def test_parameter_counts_match_the_paper():
  assert _count(critics.build("inner_product")) == 0
  assert _count(critics.build("bilinear")) == 100 * 100
  assert _count(critics.build("separable")) == 2 * (100 * 100 + 100 + 100 * 100 + 100)  # ~40k
  assert _count(critics.build("concat")) == 200 * 200 + 200 + 200 + 1  # ~40k


def test_unknown_critic_names_the_key():
  with pytest.raises(ConfigError, match=r"train.critic='mlp2'.*'bilinear'"):
    critics.build("mlp2")
