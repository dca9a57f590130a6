"""Shared fixtures: quiet TensorFlow, clean gin state, and a tiny IDX dataset on disk."""

import gzip
import os
import struct

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# One TensorFlow compute thread per test process (inherited by the command lines the tests
# start): the suite runs a process per core (setup.cfg), and tiny models gain nothing from
# more threads, only contention.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import gin  # pylint: disable=g-import-not-at-top
import numpy as np
import pytest
import tensorflow as tf

# Two logical CPU devices, so that MirroredStrategy(["/cpu:0", "/cpu:1"]) can be tested; this
# must happen before TensorFlow initialises its devices, i.e. before any test runs an op.
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


def write_idx(path, array):
  """Writes a uint8 array as an IDX file (gzipped if the path ends in .gz)."""
  array = np.asarray(array, dtype=np.uint8)
  header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}i",
                                                                 *array.shape)
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "wb") as f:
    f.write(header + array.tobytes())


def make_images(n, seed):
  """28x28 images whose class (0-9) shows as a bright bar in both halves, plus noise."""
  rng = np.random.default_rng(seed)
  labels = np.arange(n) % 10
  images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.float64)
  for i, c in enumerate(labels):
    images[i, 2 + c, 3:25] += 180  # top half, row 2 + c
    images[i, 16 + c, 3:25] += 180  # bottom half, row 16 + c
  return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.uint8)


def write_idx_dataset(directory, n_train=512, n_test=256):
  os.makedirs(directory, exist_ok=True)
  train_x, train_y = make_images(n_train, seed=1)
  test_x, test_y = make_images(n_test, seed=2)
  write_idx(os.path.join(directory, "train-images-idx3-ubyte.gz"), train_x)
  write_idx(os.path.join(directory, "train-labels-idx1-ubyte.gz"), train_y)
  write_idx(os.path.join(directory, "t10k-images-idx3-ubyte"), test_x)  # not gzipped
  write_idx(os.path.join(directory, "t10k-labels-idx1-ubyte.gz"), test_y)
  return directory


@pytest.fixture(scope="session")
def tiny_idx_dir(tmp_path_factory):
  return write_idx_dataset(str(tmp_path_factory.mktemp("tiny_idx")))


@pytest.fixture(autouse=True)
def clean_gin():
  gin.clear_config()
  yield
  gin.clear_config()


@pytest.fixture(scope="session")
def two_cpu_strategy():
  """One MirroredStrategy over the two logical CPUs for the whole session (strategies created
  side by side in one process can collide in their collective instance keys)."""
  from mi_repr_tf import distribute  # pylint: disable=g-import-not-at-top
  return distribute.get_strategy("mirrored", cpu_devices=2)  # the runs' own strategy
