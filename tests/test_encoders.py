"""Encoders: parameter counts from the paper, shapes, and no leakage across the batch."""

import gin
import numpy as np
import pytest
import tensorflow as tf

from mi_repr_tf import encoders
from mi_repr_tf import registry
from mi_repr_tf.errors import ConfigError

MNIST_HALF = (14, 28, 1)


def test_mlp_parameter_count():
  model = encoders.build("mlp", MNIST_HALF, "g1")
  # 392*300+300 + 300*300+300 + 300*100+100 ("about 238k")
  assert model.count_params() == 238_300


def test_convnet_parameter_count():
  model = encoders.build("convnet", MNIST_HALF, "g1")
  # conv 5*5*1*64+64 + conv 5*5*64*128+128 + layer-norm 2*128 + dense 128*100+100 ("about 220k")
  assert model.count_params() == 1_664 + 204_928 + 256 + 12_900 == 219_748


# Section 3.1's encoders keep the input's dimension (392 on an MNIST half); the others give 100.
SAME_DIM = {"mlp_skip", "realnvp"}


@pytest.fixture(autouse=True)
def small_realnvp():
  """Shapes and batch independence do not depend on the RealNVP's size: a small one (the
  full-size parameter count is tested in test_realnvp.py)."""
  gin.bind_parameter("realnvp.num_couplings", 2)
  gin.bind_parameter("realnvp.hidden_units", (16,))


@pytest.mark.parametrize("name", registry.names("encoder"))
@pytest.mark.parametrize("shape", [MNIST_HALF, (16, 32, 3)])
def test_output_shape(name, shape):
  model = encoders.build(name, shape, "g1")
  dim = int(np.prod(shape)) if name in SAME_DIM else 100
  assert tuple(model(np.zeros((3,) + shape, np.float32)).shape) == (3, dim)


def test_mlp_skip_parameter_count():
  model = encoders.build("mlp_skip", MNIST_HALF, "g1")
  assert model.count_params() == 5 * (392 * 392 + 392) == 770_280


def test_mlp_skip_starts_near_the_identity():
  """Truncated-normal kernels (|W_ij| <= 2e-4), zero biases, five layers: every entry of the
  Jacobian is within 1e-3 of the identity's, and the output within 1e-2 of the input."""
  rng = np.random.default_rng(0)
  x = tf.constant(rng.uniform(size=(16,) + MNIST_HALF), tf.float32)
  model = encoders.build("mlp_skip", MNIST_HALF, "g1")
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = model(x)
  jac = tape.batch_jacobian(y, x).numpy().reshape(16, 392, 392)
  deviation = np.abs(jac - np.eye(392))
  assert deviation.max() < 1e-3
  assert deviation.max() > 1e-5  # not exactly the identity: the kernels are not zero
  np.testing.assert_allclose(y, x.numpy().reshape(16, 392), atol=1e-2)


@pytest.mark.parametrize("name", registry.names("encoder"))
def test_examples_are_encoded_independently(name):
  """No batch statistics: example 0's embedding does not depend on the rest of the batch."""
  rng = np.random.default_rng(0)
  model = encoders.build(name, MNIST_HALF, "g1")
  batch = rng.uniform(size=(8,) + MNIST_HALF).astype(np.float32)
  other = batch.copy()
  other[1:] = rng.uniform(size=(7,) + MNIST_HALF)
  np.testing.assert_allclose(model(batch, training=True)[0], model(other, training=True)[0],
                             rtol=1e-5, atol=1e-6)


def test_channel_layer_norm_normalises_each_example():
  layer = encoders.ChannelLayerNorm()
  x = np.random.default_rng(0).normal(3.0, 5.0, size=(4, 3, 5, 2)).astype(np.float32)
  y = layer(x).numpy()
  np.testing.assert_allclose(y.mean(axis=(1, 2, 3)), 0, atol=1e-5)
  np.testing.assert_allclose(y.std(axis=(1, 2, 3)), 1, atol=1e-3)


def test_unknown_encoder_names_the_key():
  with pytest.raises(ConfigError, match=r"train.encoder='resnet'.*'convnet', 'mlp'"):
    encoders.build("resnet", MNIST_HALF, "g1")
