"""Critics: shapes, the (i, j) -> f(x_i, y_j) convention, and parameter counts."""

import keras
import numpy as np
import pytest
import tensorflow as tf

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


# ------------------------------------------------------- concat critic: exactness and init


def _reference_mlp(critic, d1, d2):
  """The concat critic's function written plainly: keras Dense layers on each [x_i, y_j].

  A separate network whose weights are copies of the critic's: the first layer is one
  Dense(h, relu) on the d1 + d2 concatenated inputs, then the critic's remaining layers.
  """
  units = critic.hidden_units
  layers = [keras.layers.Dense(u, activation="relu") for u in units] + [keras.layers.Dense(1)]
  reference = keras.Sequential(layers)
  reference.build((None, d1 + d2))
  weights = [critic.first_layer_kernel().numpy(), critic.b.numpy()]
  reference.set_weights(weights + [w.numpy() for w in critic.rest.weights])
  return reference


def _reference_scores(reference, x, y):
  k1, k2 = x.shape[0], y.shape[0]
  pairs = tf.concat([tf.repeat(x, k2, axis=0), tf.tile(y, [k1, 1])], axis=1)  # [x_i, y_j]
  return tf.reshape(reference(pairs), (k1, k2))


def _scores_and_gradients(score_fn, x, y, upstream, variables):
  """The scores and the gradients of sum(upstream * scores) w.r.t. x, y and `variables`."""
  with tf.GradientTape() as tape:
    tape.watch([x, y])
    scores = score_fn(x, y)
    loss = tf.reduce_sum(upstream * scores)
  return scores, tape.gradient(loss, [x, y] + list(variables))


def _randomised_concat_critic(hidden_units, implementation, d1, d2, seed):
  """A built ConcatCritic with nonzero biases (so that every parameter matters)."""
  keras.utils.set_random_seed(seed)
  critic = critics.ConcatCritic(hidden_units, implementation)
  critic.build((None, d1), (None, d2))
  rng = np.random.default_rng(seed)
  critic.b.assign(rng.normal(0, 0.5, critic.b.shape).astype(np.float32))
  for layer in critic.rest.layers:
    layer.bias.assign(rng.normal(0, 0.5, layer.bias.shape).astype(np.float32))
  return critic


_CONCAT_FORMS = [(units, implementation)
                 for units in [(200,), (10, 10, 10, 10, 10), (16, 8)]
                 for implementation in critics.ConcatCritic.IMPLEMENTATIONS
                 if len(units) == 1 or implementation != "recompute"]  # recompute: 1 layer


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("hidden_units,implementation", _CONCAT_FORMS)
def test_concat_equals_dense_on_concatenated_pairs(hidden_units, implementation, jit):
  k1, k2, d1, d2 = 9, 6, 7, 5
  critic = _randomised_concat_critic(hidden_units, implementation, d1, d2, seed=3)
  reference = _reference_mlp(critic, d1, d2)
  rng = np.random.default_rng(4)
  x = tf.constant(rng.standard_normal((k1, d1)), tf.float32)
  y = tf.constant(rng.standard_normal((k2, d2)), tf.float32)
  upstream = tf.constant(rng.standard_normal((k1, k2)), tf.float32)

  run = lambda: _scores_and_gradients(critic, x, y, upstream,
                                      [critic.w_x, critic.w_y, critic.b]
                                      + critic.rest.trainable_weights)
  scores, grads = (tf.function(run, jit_compile=True) if jit else run)()
  expected, expected_grads = _scores_and_gradients(
      lambda x, y: _reference_scores(reference, x, y), x, y, upstream,
      reference.trainable_weights)

  assert 0.2 < np.mean(_first_layer_active(critic, x, y)) < 0.8  # both relu branches used
  np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)
  dx, dy, dw_x, dw_y = grads[:4]
  expected_dx, expected_dy, expected_kernel = expected_grads[:3]
  np.testing.assert_allclose(dx, expected_dx, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(dy, expected_dy, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.concatenate([dw_x, dw_y]), expected_kernel, rtol=1e-4,
                             atol=1e-5)
  for got, want in zip(grads[4:], expected_grads[3:]):  # b, then the rest's kernels and biases
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def _first_layer_active(critic, x, y):
  a = x.numpy() @ critic.w_x.numpy()
  b = y.numpy() @ critic.w_y.numpy() + critic.b.numpy()
  return (a[:, None, :] + b[None, :, :]) > 0


def test_concat_gradient_of_output_kernel_by_hand():
  """dS/dw for the one-layer form: sum_ij G_ij relu(a_ih + b_jh), in float64 numpy."""
  critic = _randomised_concat_critic((12,), "recompute", 4, 3, seed=5)
  rng = np.random.default_rng(6)
  x = tf.constant(rng.standard_normal((5, 4)), tf.float32)
  y = tf.constant(rng.standard_normal((8, 3)), tf.float32)
  upstream = rng.standard_normal((5, 8))
  output = critic.rest.layers[-1]
  _, grads = _scores_and_gradients(critic, x, y, tf.constant(upstream, tf.float32),
                                   [output.kernel, output.bias])
  a = x.numpy().astype(np.float64) @ critic.w_x.numpy()
  b = y.numpy().astype(np.float64) @ critic.w_y.numpy() + critic.b.numpy()
  hidden = np.maximum(a[:, None, :] + b[None, :, :], 0)
  dw, dc = grads[2:]  # after dx, dy
  np.testing.assert_allclose(dw.numpy()[:, 0], np.einsum("ij,ijh->h", upstream, hidden),
                             rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(dc.numpy(), [upstream.sum()], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("d1,d2,h,copies", [(100, 100, 200, 1), (100, 30, 200, 1),
                                            (1, 1, 10, 60)])
def test_concat_first_layer_has_the_single_layer_glorot_distribution(d1, d2, h, copies):
  """W_x, W_y are one Glorot-uniform draw over fan-in d1 + d2: |W| <= sqrt(6 / (d1 + d2 + h)),
  and the bound is reached; separate draws would go up to sqrt(6 / (d1 + h)), 15% higher for
  the paper's d1 = d2 = 100, h = 200. (d1 = d2 = 1, h = 10: the Gaussian experiment's critic.)"""
  keras.utils.set_random_seed(0)
  limit = np.sqrt(6 / (d1 + d2 + h))
  parts = []
  for _ in range(copies):
    critic = critics.ConcatCritic((h,))
    critic.build((None, d1), (None, d2))
    kernel = critic.first_layer_kernel().numpy()
    assert kernel.shape == (d1 + d2, h)
    parts.append((critic.w_x.numpy().ravel(), critic.w_y.numpy().ravel()))
  w_x, w_y = (np.concatenate(p) for p in zip(*parts))
  for part in (w_x, w_y):
    assert np.max(np.abs(part)) <= limit * (1 + 1e-6)
    assert np.max(np.abs(part)) > 0.95 * limit
  everything = np.concatenate([w_x, w_y])
  assert abs(np.std(everything) - limit / np.sqrt(3)) < 0.05 * limit / np.sqrt(3)


def test_concat_initialisation_is_deterministic_for_a_seed():
  def weights(seed):
    keras.utils.set_random_seed(seed)
    critic = critics.build("concat")
    critic(np.zeros((2, 100), np.float32), np.zeros((2, 100), np.float32))
    return [w.numpy() for w in critic.weights]

  first, again, other = weights(1), weights(1), weights(2)
  for w1, w2 in zip(first, again):
    np.testing.assert_array_equal(w1, w2)
  assert not np.array_equal(first[0], other[0])
  assert not np.array_equal(first[0][:, :100], first[1][:, :100])  # W_x, W_y differ


@pytest.mark.parametrize("hidden_units,jit,expected", [((200,), True, True), ((200,), False, False),
                                                       ((10,) * 5, True, False)])
def test_concat_auto_recomputes_under_xla_with_one_hidden_layer(hidden_units, jit, expected):
  critic = critics.ConcatCritic(hidden_units)
  critic.build((None, 4), (None, 4))  # no variables created while tracing: traced once
  traced = []

  def scores(x, y):
    traced.append(critic.recomputes())
    return critic(x, y)

  x, y = _xy(d=4)
  (tf.function(scores, jit_compile=True) if jit else scores)(x, y)
  assert traced == [expected]


def test_concat_rejects_unknown_or_impossible_implementations():
  with pytest.raises(ValueError, match="implementation='fast'"):
    critics.ConcatCritic((200,), "fast")
  with pytest.raises(ValueError, match="one hidden layer"):
    critics.ConcatCritic((10, 10), "recompute")
