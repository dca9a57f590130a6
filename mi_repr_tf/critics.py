"""Critics f(x, y): each maps embeddings x [K, d1] and y [K, d2] to the K x K score matrix
S[i, j] = f(x_i, y_j) (Section 3.2).

- inner product: f(x, y) = x . y
- bilinear:      f(x, y) = x^T W y, W a dense matrix without bias
- separable:     f(x, y) = phi1(x) . phi2(y), each phi an MLP (100 relu -> 100)
- concat:        f(x, y) = phi([x, y]), an MLP on the concatenation (200 relu -> 1) evaluated
                 on all K x K pairs; the paper calls it the "MLP critic".
"""

import gin
import keras

from mi_repr_tf import registry


class InnerProductCritic(keras.layers.Layer):
  """f(x, y) = x . y; no parameters. x and y must have the same dimension."""

  def call(self, x, y):
    return keras.ops.matmul(x, keras.ops.transpose(y))


class BilinearCritic(keras.layers.Layer):
  """f(x, y) = x^T W y with a dense d1 x d2 matrix W and no bias."""

  def build(self, x_shape, y_shape):
    self.w = self.add_weight(name="w", shape=(x_shape[-1], y_shape[-1]),
                             initializer="glorot_uniform")

  def call(self, x, y):
    return keras.ops.matmul(keras.ops.matmul(x, self.w), keras.ops.transpose(y))


def _mlp(hidden_units, output_units, name):
  layers = [keras.layers.Dense(u, activation="relu") for u in hidden_units]
  layers.append(keras.layers.Dense(output_units))
  return keras.Sequential(layers, name=name)


class SeparableCritic(keras.layers.Layer):
  """f(x, y) = phi1(x) . phi2(y), phi = Dense(hidden, relu) ... -> Dense(output_units)."""

  def __init__(self, hidden_units=(100,), output_units=100, **kwargs):
    super().__init__(**kwargs)
    self.phi1 = _mlp(hidden_units, output_units, "phi1")
    self.phi2 = _mlp(hidden_units, output_units, "phi2")

  def call(self, x, y):
    return keras.ops.matmul(self.phi1(x), keras.ops.transpose(self.phi2(y)))


class ConcatCritic(keras.layers.Layer):
  """f(x, y) = phi([x, y]) on all K x K pairs, phi = Dense(hidden, relu) ... -> Dense(1).

  The first layer is split as W [x; y] + b = W_x x + W_y y + b, so its pre-activations for all
  K^2 pairs are a broadcast sum of two [K, h] matrices: the same function as running phi on
  each concatenated pair, without materialising the [K^2, d1 + d2] input.
  """

  def __init__(self, hidden_units=(200,), **kwargs):
    super().__init__(**kwargs)
    if not hidden_units:
      raise ValueError("ConcatCritic needs at least one hidden layer")
    self.hidden_units = tuple(hidden_units)
    self.rest = _mlp(self.hidden_units[1:], 1, "phi_rest")

  def build(self, x_shape, y_shape):
    h = self.hidden_units[0]
    self.w_x = self.add_weight(name="w_x", shape=(x_shape[-1], h), initializer="glorot_uniform")
    self.w_y = self.add_weight(name="w_y", shape=(y_shape[-1], h), initializer="glorot_uniform")
    self.b = self.add_weight(name="b", shape=(h,), initializer="zeros")

  def first_layer_kernel(self):
    """The first layer's kernel for the concatenated input [x, y]: [d1 + d2, h]."""
    return keras.ops.concatenate([self.w_x, self.w_y], axis=0)

  def call(self, x, y):
    k1, k2 = keras.ops.shape(x)[0], keras.ops.shape(y)[0]
    a = keras.ops.matmul(x, self.w_x)  # [K1, h]
    b = keras.ops.matmul(y, self.w_y) + self.b  # [K2, h]
    hidden = keras.ops.relu(a[:, None, :] + b[None, :, :])  # [K1, K2, h]
    scores = self.rest(keras.ops.reshape(hidden, (k1 * k2, self.hidden_units[0])))
    return keras.ops.reshape(scores, (k1, k2))


@registry.register("critic", "inner_product")
@gin.configurable("inner_product")
def inner_product():
  return InnerProductCritic(name="critic")


@registry.register("critic", "bilinear")
@gin.configurable("bilinear")
def bilinear():
  return BilinearCritic(name="critic")


@registry.register("critic", "separable")
@gin.configurable("separable")
def separable(hidden_units=(100,), output_units=100):
  return SeparableCritic(hidden_units, output_units, name="critic")


@registry.register("critic", "concat")
@gin.configurable("concat")
def concat(hidden_units=(200,)):
  return ConcatCritic(hidden_units, name="critic")


def build(name, key="train.critic"):
  """A new critic layer of the kind registered as `name`."""
  return registry.get("critic", name, key)()
