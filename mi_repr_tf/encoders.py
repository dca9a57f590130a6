"""Encoders g1 (of x_top) and g2 (of x_bottom): separate networks, no shared weights.

Section 3.2-3.3 and Appendix D of the paper:
- MLP: Dense(300, relu) -> Dense(300, relu) -> Dense(100); 238,300 parameters on a 392-pixel
  MNIST half ("about 238k").
- ConvNet: Conv2D(64, 5x5, stride 2, same, relu) -> Conv2D(128, 5x5, stride 2, same, relu)
  -> layer normalisation over (H, W, C) with a per-channel scale and offset (as TF1's
  `layer_norm` defaults) -> global average pooling -> Dense(100); 219,748 parameters on a
  14x28x1 half ("about 220k"). No batch normalisation: it would leak information across the
  batch, i.e. across positives and negatives.

Section 3.1 (the same dimension as the input, 392 on an MNIST half):
- MLP with skip connections ('mlp_skip'): five square layers x = layer(x) + x, near the
  identity at initialisation; it can become non-invertible (experiment E3).
- RealNVP ('realnvp', registered in realnvp.py): invertible for every parameter value (E1, E2).

Every encoder takes a half image [B, H, W, C] in [0, 1] and returns [B, dim].
"""

import gin
import keras

from mi_repr_tf import registry


class ChannelLayerNorm(keras.layers.Layer):
  """Normalises each example over all its (H, W, C) values, then a per-channel affine map."""

  def __init__(self, epsilon=1e-6, **kwargs):
    super().__init__(**kwargs)
    self.epsilon = epsilon

  def build(self, input_shape):
    channels = input_shape[-1]
    self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="ones")
    self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros")

  def call(self, x):
    mean, variance = keras.ops.moments(x, axes=[1, 2, 3], keepdims=True)
    x = (x - mean) * keras.ops.rsqrt(variance + self.epsilon)
    return x * self.gamma + self.beta


@registry.register("encoder", "mlp")
@gin.configurable("mlp")
def mlp(input_shape, hidden_units=(300, 300), dim=100, name="mlp"):
  """MLP encoder: flatten -> Dense(h, relu) for h in hidden_units -> Dense(dim)."""
  inputs = keras.Input(shape=input_shape)
  x = keras.layers.Flatten()(inputs)
  for units in hidden_units:
    x = keras.layers.Dense(units, activation="relu")(x)
  outputs = keras.layers.Dense(dim)(x)
  return keras.Model(inputs, outputs, name=name)


@registry.register("encoder", "convnet")
@gin.configurable("convnet")
def convnet(input_shape, filters=(64, 128), kernel_size=5, dim=100, name="convnet"):
  """ConvNet encoder of Section 3.3 (strided convolutions, layer norm, global pooling)."""
  inputs = keras.Input(shape=input_shape)
  x = inputs
  for f in filters:
    x = keras.layers.Conv2D(f, kernel_size, strides=2, padding="same", activation="relu")(x)
  x = ChannelLayerNorm()(x)
  x = keras.layers.GlobalAveragePooling2D()(x)
  outputs = keras.layers.Dense(dim)(x)
  return keras.Model(inputs, outputs, name=name)


class SkipDense(keras.layers.Layer):
  """x -> activation(W x + b) + x: a square Dense layer with a skip connection."""

  def __init__(self, activation=None, init_stddev=1e-4, **kwargs):
    super().__init__(**kwargs)
    self.activation = keras.activations.get(activation)
    self.init_stddev = init_stddev

  def build(self, input_shape):
    dim = input_shape[-1]
    self.kernel = self.add_weight(
        name="kernel", shape=(dim, dim),
        initializer=keras.initializers.TruncatedNormal(stddev=self.init_stddev))
    self.bias = self.add_weight(name="bias", shape=(dim,), initializer="zeros")

  def call(self, x):
    return self.activation(keras.ops.matmul(x, self.kernel) + self.bias) + x


@registry.register("encoder", "mlp_skip")
@gin.configurable("mlp_skip")
def mlp_skip(input_shape, num_layers=5, init_stddev=1e-4, name="mlp_skip"):
  """MLP with skip connections of Section 3.1 ("bias towards hard-to-invert encoders").

  Flatten to d values (392 on MNIST), then `num_layers` layers x = layer(x) + x of width d:
  relu on all but the last (the paper's "4 hidden layers of the same dimension as the input,
  with a skip connection added to each layer"). Kernels are truncated-normal with stddev
  `init_stddev` (so |W_ij| <= 2 * init_stddev) and biases zero: at initialisation every entry
  of the Jacobian is within 5 * 2e-4 = 1e-3 of the identity's, and g1 is close to the identity,
  which maximises the true MI. Training can make it ill-conditioned or non-invertible.
  """
  inputs = keras.Input(shape=input_shape)
  x = keras.layers.Flatten()(inputs)
  for i in range(num_layers):
    activation = "relu" if i < num_layers - 1 else None
    x = SkipDense(activation, init_stddev, name=f"skip_dense_{i}")(x)
  return keras.Model(inputs, x, name=name)


def build(name, input_shape, model_name, key="train.encoder"):
  """A new encoder of the kind registered as `name` for inputs of `input_shape`."""
  return registry.get("encoder", name, key)(input_shape, name=model_name)
