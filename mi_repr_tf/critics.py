"""Critics f(x, y): each maps embeddings x [K, d1] and y [K, d2] to the K x K score matrix
S[i, j] = f(x_i, y_j) (Section 3.2).

- inner product: f(x, y) = x . y
- bilinear:      f(x, y) = x^T W y, W a dense matrix without bias
- separable:     f(x, y) = phi1(x) . phi2(y), each phi an MLP (100 relu -> 100)
- concat:        f(x, y) = phi([x, y]), an MLP on the concatenation (200 relu -> 1) evaluated
                 on all K x K pairs; the paper calls it the "MLP critic".
"""

import random

import gin
import keras
import tensorflow as tf

from mi_repr_tf import registry

# Private, but TensorFlow's own gradient code asks it whether XLA compiles the graph.
try:
  # pylint: disable-next=g-direct-tensorflow-import
  from tensorflow.python.ops import control_flow_util as _tf_control_flow
except ImportError:
  _tf_control_flow = None


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


def compiled_by_xla():
  """True while tracing a function that XLA compiles (`tf.function(jit_compile=True)`)."""
  in_xla = getattr(_tf_control_flow, "GraphOrParentsInXlaContext", None)
  if in_xla is None:  # TensorFlow moved its private helper: assume XLA
    return True
  return bool(in_xla(tf.compat.v1.get_default_graph()))


def _sum_over_first_axis(t):
  """sum(t, axis=0) as a tree of elementwise adds of halves: t[:n/2] + t[n/2:], and so on.

  XLA turns this into loop fusions vectorised along the minor axes, whereas its CPU backend
  emits `reduce_sum` over an axis of a fused [K, K, h] expression as scalar loops (several
  times slower). An odd length gets a zero slice; an unknown length falls back to `reduce_sum`.
  """
  if t.shape[0] is None:
    return tf.reduce_sum(t, axis=0)
  while t.shape[0] > 1:
    if t.shape[0] % 2:
      t = tf.concat([t, tf.zeros_like(t[:1])], axis=0)
    half = t.shape[0] // 2
    t = t[:half] + t[half:]
  return t[0]


def _masked_sums(u, v, g):
  """out[j, h] = sum_i g[i, j] 1[u[i, h] + v[j, h] > 0]  (u [K1, h], v [K2, h], g [K1, K2]).

  The relu mask is recomputed from u and v. Under XLA the [K1, K2, h] tensor is never stored
  (XLA may store a partial sum of the first halvings, e.g. [K1 / 8, K2, h]).
  """
  mask = u[:, None, :] + v[None, :, :] > 0  # [K1, K2, h]
  return _sum_over_first_axis(tf.where(mask, g[:, :, None], tf.zeros([], g.dtype)))


@tf.autograph.experimental.do_not_convert
def pairwise_relu_scores(a, b, w):
  """S[i, j] = sum_h relu(a[i, h] + b[j, h]) w[h]: a one-hidden-layer MLP on all K1 x K2 pairs.

  With a = x W_x and b = y W_y + bias this is phi([x_i, y_j]) of the concat critic (Section 3.2)
  without its output bias. Written for XLA, where neither pass stores the [K1, K2, h]
  activations: the forward pass fuses the broadcast sum, the relu and the reduction over h
  into one matrix-vector product, and the backward pass recomputes the relu mask
  m[i, j, h] = 1[a_ih + b_jh > 0] in two fused passes:
    dA[i, h] = w[h] P[i, h],  P[i, h] = sum_j G[i, j] m[i, j, h]
    dB[j, h] = w[h] Q[j, h],  Q[j, h] = sum_i G[i, j] m[i, j, h]
    dw[h] = sum_ij G[i, j] relu(a_ih + b_jh) = sum_i a_ih P[i, h] + sum_j b_jh Q[j, h]
  (relu(z) = z 1[z > 0], so dw needs no third pass). First-order gradients only.

  Args:
    a: [K1, h] first-layer pre-activations of x (without the bias).
    b: [K2, h] first-layer pre-activations of y (with the bias).
    w: [h] the output layer's kernel.

  Returns:
    The [K1, K2] scores.
  """

  @tf.custom_gradient
  def scores(a, b, w):
    k1, k2, h = tf.shape(a)[0], tf.shape(b)[0], tf.shape(a)[1]
    hidden = tf.nn.relu(a[:, None, :] + b[None, :, :])  # fused into the product below
    flat = tf.linalg.matvec(tf.reshape(hidden, [k1 * k2, h]), w)

    def grad(g):
      p = _masked_sums(b, a, tf.transpose(g))
      q = _masked_sums(a, b, g)
      dw = tf.reduce_sum(a * p, axis=0) + tf.reduce_sum(b * q, axis=0)
      return p * w, q * w, dw

    return tf.reshape(flat, [k1, k2]), grad

  return scores(a, b, w)


def _split_glorot(total_rows, units):
  """Initializers of row blocks of one Glorot-uniform kernel [total_rows, units].

  `part(start, stop)` initializes rows [start, stop) of a kernel drawn with one integer seed
  (taken from Python's generator, as Keras takes an unseeded initializer's, so a fixed
  `keras.utils.set_random_seed` fixes it): the parts together are one draw of the single
  layer, limit sqrt(6 / (total_rows + units)), not the larger sqrt(6 / (rows + units)) of
  separate draws.
  """
  glorot = keras.initializers.GlorotUniform(seed=random.randint(1, 10**9))

  def part(start, stop):
    def initializer(shape, dtype=None):
      del shape  # the rows [start, stop) of the whole kernel
      return glorot((total_rows, units), dtype=dtype)[start:stop]
    return initializer

  return part


class ConcatCritic(keras.layers.Layer):
  """f(x, y) = phi([x, y]) on all K1 x K2 pairs, phi = Dense(hidden, relu) ... -> Dense(1).

  The paper's "MLP critic" (Section 3.2: one hidden layer of 200 units) and the Gaussian
  experiment's critic (Appendix E: five hidden layers of 10 units). The first layer is split as
  W [x; y] + b = W_x x + W_y y + b, so its pre-activations for all pairs are a broadcast sum of
  a [K1, h] and a [K2, h] matrix, and the [K1 K2, d1 + d2] input is never formed. W_x and W_y
  are the row blocks of one Glorot-uniform kernel over fan-in d1 + d2, as the single layer's.

  `implementation` chooses how the scores and gradients are computed (the numbers agree to
  float32 rounding):
  - "recompute": `pairwise_relu_scores`, which under XLA never stores the [K1, K2, h]
    activations; one hidden layer only.
  - "materialise": the hidden activations of all pairs are formed and the rest of the MLP runs
    on them (with autodiff); the only form for several hidden layers.
  - "auto": "recompute" for one hidden layer inside an XLA-compiled function, else
    "materialise" (without XLA nothing fuses and plain autodiff is the faster form).
  """

  IMPLEMENTATIONS = ("auto", "recompute", "materialise")

  def __init__(self, hidden_units=(200,), implementation="auto", **kwargs):
    super().__init__(**kwargs)
    if not hidden_units:
      raise ValueError("ConcatCritic needs at least one hidden layer")
    if implementation not in self.IMPLEMENTATIONS:
      raise ValueError(f"ConcatCritic implementation={implementation!r} is not one of "
                       f"{self.IMPLEMENTATIONS}")
    if implementation == "recompute" and len(hidden_units) > 1:
      raise ValueError("ConcatCritic implementation='recompute' needs one hidden layer, got "
                       f"hidden_units={tuple(hidden_units)}")
    self.hidden_units = tuple(hidden_units)
    self.implementation = implementation
    self.rest = _mlp(self.hidden_units[1:], 1, "phi_rest")

  def recomputes(self):
    """Whether a call traced now takes the "recompute" form."""
    if self.implementation == "auto":
      return len(self.hidden_units) == 1 and compiled_by_xla()
    return self.implementation == "recompute"

  def build(self, x_shape, y_shape):
    d1, d2, h = x_shape[-1], y_shape[-1], self.hidden_units[0]
    part = _split_glorot(d1 + d2, h)
    self.w_x = self.add_weight(name="w_x", shape=(d1, h), initializer=part(0, d1))
    self.w_y = self.add_weight(name="w_y", shape=(d2, h), initializer=part(d1, d1 + d2))
    self.b = self.add_weight(name="b", shape=(h,), initializer="zeros")
    self.rest.build((None, h))

  def first_layer_kernel(self):
    """The first layer's kernel for the concatenated input [x, y]: [d1 + d2, h]."""
    return keras.ops.concatenate([self.w_x, self.w_y], axis=0)

  def call(self, x, y):
    a = keras.ops.matmul(x, self.w_x)  # [K1, h]
    b = keras.ops.matmul(y, self.w_y) + self.b  # [K2, h]
    if self.recomputes():
      output = self.rest.layers[-1]
      w = keras.ops.reshape(output.kernel, (self.hidden_units[0],))
      return pairwise_relu_scores(a, b, w) + output.bias
    k1, k2 = keras.ops.shape(x)[0], keras.ops.shape(y)[0]
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
def concat(hidden_units=(200,), implementation="auto"):
  return ConcatCritic(hidden_units, implementation, name="critic")


def build(name, key="train.critic"):
  """A new critic layer of the kind registered as `name`."""
  return registry.get("critic", name, key)()
