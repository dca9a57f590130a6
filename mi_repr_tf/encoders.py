"""Encoders g1 (of x_top) and g2 (of x_bottom): separate networks, no shared weights.

Section 3.2-3.3 and Appendix D of the paper:
- MLP: Dense(300, relu) -> Dense(300, relu) -> Dense(100); 238,300 parameters on a 392-pixel
  MNIST half ("about 238k").
- ConvNet: Conv2D(64, 5x5, stride 2, same, relu) -> Conv2D(128, 5x5, stride 2, same, relu)
  -> layer normalisation over (H, W, C) with a per-channel scale and offset (as TF1's
  `layer_norm` defaults) -> global average pooling -> Dense(100); 219,748 parameters on a
  14x28x1 half ("about 220k"). No batch normalisation: it would leak information across the
  batch, i.e. across positives and negatives.

Every encoder takes a half image [B, H, W, C] in [0, 1] and returns [B, dim].
"""

import gin
import keras

from mi_repr_tf.errors import check_choice


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


@gin.configurable("mlp")
def mlp(input_shape, hidden_units=(300, 300), dim=100, name="mlp"):
  """MLP encoder: flatten -> Dense(h, relu) for h in hidden_units -> Dense(dim)."""
  inputs = keras.Input(shape=input_shape)
  x = keras.layers.Flatten()(inputs)
  for units in hidden_units:
    x = keras.layers.Dense(units, activation="relu")(x)
  outputs = keras.layers.Dense(dim)(x)
  return keras.Model(inputs, outputs, name=name)


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


ENCODERS = {
    "mlp": mlp,
    "convnet": convnet,
}


def get_encoder(name, input_shape, model_name):
  """A new encoder of the kind `name` (one of ENCODERS) for inputs of `input_shape`."""
  return ENCODERS[check_choice("train.encoder", name, ENCODERS)](input_shape, name=model_name)
