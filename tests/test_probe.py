"""The SAGA linear probe on inputs with known answers."""

import numpy as np

from mi_repr_tf import probe


def _blobs(n, d, separation, seed):
  rng = np.random.default_rng(seed)
  labels = np.arange(n) % 10
  centers = separation * np.eye(10, d)
  return centers[labels] + rng.standard_normal((n, d)), labels


def test_separable_classes_are_classified_perfectly():
  train_x, train_y = _blobs(2000, 20, separation=20.0, seed=0)
  test_x, test_y = _blobs(500, 20, separation=20.0, seed=1)
  assert probe.linear_probe(train_x, train_y, test_x, test_y) == 1.0


def test_random_labels_give_chance_accuracy():
  rng = np.random.default_rng(0)
  train_x, test_x = rng.standard_normal((2000, 20)), rng.standard_normal((1000, 20))
  accuracy = probe.linear_probe(train_x, rng.integers(0, 10, 2000), test_x,
                                rng.integers(0, 10, 1000))
  assert 0.05 < accuracy < 0.16


def test_probe_is_invariant_to_feature_scale_and_offset():
  """MinMaxScaler is fit on train: affine rescaling of a feature changes nothing."""
  train_x, train_y = _blobs(1000, 12, separation=2.0, seed=0)
  test_x, test_y = _blobs(400, 12, separation=2.0, seed=1)
  a = probe.linear_probe(train_x, train_y, test_x, test_y, seed=3)
  scale = np.linspace(0.01, 100, 12)
  b = probe.linear_probe(train_x * scale + 7, train_y, test_x * scale + 7, test_y, seed=3)
  assert abs(a - b) <= 0.01
  assert 0.3 < a < 1.0


def test_images_are_flattened():
  train_x, train_y = _blobs(500, 12, separation=20.0, seed=0)
  test_x, test_y = _blobs(100, 12, separation=20.0, seed=1)
  assert probe.linear_probe(train_x.reshape(500, 3, 4, 1), train_y,
                            test_x.reshape(100, 3, 4, 1), test_y) == 1.0
