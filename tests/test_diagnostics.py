"""Jacobian conditioning and reconstruction diagnostics (Section 3.1) on known answers."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from mi_repr_tf import data
from mi_repr_tf import diagnostics
from mi_repr_tf import realnvp


def orthogonal(n, rng):
  q, _ = np.linalg.qr(rng.normal(size=(n, n)))
  return q


def matrix_with_singular_values(s, rng, rows=None):
  """U diag(s) V^T with random orthogonal U ([rows, rows]) and V."""
  rows = rows or len(s)
  u, v = orthogonal(rows, rng), orthogonal(len(s), rng)
  sigma = np.zeros((rows, len(s)))
  sigma[:len(s), :len(s)] = np.diag(s)
  return u @ sigma @ v.T


def test_log_condition_numbers_known_singular_values():
  rng = np.random.default_rng(0)
  spectra = [[1.0, 1.0, 1.0, 1.0], [5.0, 2.0, 1.0, 0.5], [1e3, 1.0, 1.0, 1e-2]]
  jacs = np.stack([matrix_with_singular_values(s, rng) for s in spectra]).astype(np.float32)
  np.testing.assert_allclose(diagnostics.log_condition_numbers(jacs),
                             [0.0, np.log(10.0), np.log(1e5)], atol=1e-4)
  # A tall Jacobian (more outputs than inputs): the smallest of its min(m, n) singular values.
  tall = matrix_with_singular_values([3.0, 0.3], rng, rows=5)[None]
  np.testing.assert_allclose(diagnostics.log_condition_numbers(tall), [np.log(10.0)], atol=1e-9)
  singular = np.array([[[1.0, 0.0], [0.0, 0.0]]])
  assert diagnostics.log_condition_numbers(singular)[0] == np.inf


def test_percentiles_known_answer():
  assert diagnostics.percentiles(np.arange(101.0)) == [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
  assert diagnostics.percentiles([3.0, 1.0, 2.0]) == [1.0, 1.4, 1.8, 2.2, 2.6, 3.0]


def linear_encoder(matrix, input_shape):
  """x -> flatten(x) @ matrix, without bias: its Jacobian is matrix^T everywhere."""
  inputs = keras.Input(shape=input_shape)
  flat = keras.layers.Flatten()(inputs)
  dense = keras.layers.Dense(matrix.shape[1], use_bias=False)
  model = keras.Model(inputs, dense(flat))
  dense.kernel.assign(matrix.astype(np.float32))
  return model


def tiny_dataset(noise_std=0.0, n=40):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, size=(n, 4, 3, 1)).astype(np.uint8)
  labels = np.arange(n) % 10
  return data.ImageDataset("tiny", data.Split(images, labels), data.Split(images[:20],
                                                                          labels[:20]),
                           noise_std)


def test_jacobians_of_a_linear_map():
  rng = np.random.default_rng(1)
  matrix = matrix_with_singular_values([4.0, 2.0, 1.0, 1.0, 0.5, 0.25], rng)  # 6 = 2 * 3 * 1
  encoder = linear_encoder(matrix, (2, 3, 1))
  x = rng.uniform(size=(5, 2, 3, 1)).astype(np.float32)
  jac = diagnostics.jacobians(encoder, x).numpy()
  assert jac.shape == (5, 6, 6)
  np.testing.assert_allclose(jac, np.broadcast_to(matrix.T, (5, 6, 6)), atol=1e-6)


def test_diagnostics_of_a_linear_map_with_known_singular_values():
  """Every input has the same Jacobian, so all six percentiles are log(4 / 0.25) = log 16."""
  rng = np.random.default_rng(2)
  matrix = matrix_with_singular_values([4.0, 3.0, 2.0, 1.0, 0.5, 0.25], rng)
  encoder = linear_encoder(matrix, (2, 3, 1))
  run = diagnostics.Diagnostics(encoder, tiny_dataset(noise_std=0.1), seed=0,
                                config=diagnostics.Settings(jacobian=True, num_inputs=8))
  numbers, histograms = run(step=3)
  np.testing.assert_allclose(numbers["jacobian_log_condition_percentiles"], [np.log(16.0)] * 6,
                             atol=1e-5)
  np.testing.assert_allclose(numbers["jacobian_log_condition_numbers"], [np.log(16.0)] * 8,
                             atol=1e-5)  # the raw values, which the report pools over runs
  assert histograms["jacobian/log_condition_number"].shape == (8,)
  assert "reconstruction_error" not in numbers  # a Dense layer has no exact inverse


def test_jacobian_inputs_are_fresh_at_each_evaluation_and_a_function_of_seed_and_step():
  """The paper samples the 128 inputs afresh at each evaluation."""
  dataset = tiny_dataset(noise_std=0.05)
  a = diagnostics.jacobian_inputs(dataset, 8, seed=0, step=10).numpy()
  assert a.shape == (8, 2, 3, 1)
  np.testing.assert_array_equal(a, diagnostics.jacobian_inputs(dataset, 8, 0, 10).numpy())
  assert not np.array_equal(a, diagnostics.jacobian_inputs(dataset, 8, 1, 10).numpy())
  assert not np.array_equal(a, diagnostics.jacobian_inputs(dataset, 8, 0, 20).numpy())
  clean = diagnostics.jacobian_inputs(tiny_dataset(noise_std=0.0), 8, seed=0, step=10).numpy()
  noise = a - clean  # the same images, plus the coupled noise
  assert 0.03 < noise.std() < 0.08
  assert set(np.round(clean.reshape(-1) * 255).astype(int)) <= set(range(256))


class _OffByAQuarter(keras.Model):
  """An 'inverse' that is wrong by 0.25 in one coordinate."""

  def call(self, x, training=False):
    return tf.reshape(x, (-1, 6))

  def inverse(self, y):
    return tf.reshape(y + tf.one_hot(3, 6) * 0.25, (-1, 2, 3, 1))


def test_reconstruction_error():
  x = np.random.default_rng(0).uniform(size=(4, 2, 3, 1)).astype(np.float32)
  assert diagnostics.reconstruction_error(_OffByAQuarter(), x) == pytest.approx(0.25)
  g = realnvp.realnvp((2, 3, 1), num_couplings=4, hidden_units=(8,), init_stddev=0.5,
                      permutation_seed=0)
  assert diagnostics.is_invertible(g) and not diagnostics.is_invertible(
      linear_encoder(np.eye(6), (2, 3, 1)))
  assert diagnostics.reconstruction_error(g, x) < 1e-5
  numbers, histograms = diagnostics.Diagnostics(g, tiny_dataset(), seed=0)(step=0)
  assert set(numbers) == {"reconstruction_error", "invertible"} and not histograms
  assert numbers["reconstruction_error"] < 1e-5 and numbers["invertible"] is True


def test_an_encoder_that_does_not_invert_is_recorded_as_not_invertible():
  numbers, _ = diagnostics.Diagnostics(_OffByAQuarter(), tiny_dataset(), seed=0)(step=0)
  assert numbers["reconstruction_error"] == pytest.approx(0.25)
  assert numbers["invertible"] is False


def test_settings_are_validated():
  assert diagnostics.settings() == diagnostics.Settings(False, True, 128)
  with pytest.raises(diagnostics.ConfigError, match="diagnostics.num_inputs=0"):
    diagnostics.settings(num_inputs=0)
