"""Evaluation of a two-view model at one training step (Section 3, "evaluation protocol").

- test bound: the estimator's value on the test set in batches of K, the training batch size
  (128 in the paper), averaged over the batches; the last, incomplete batch is left out, so
  every batch has the same K and I_NCE <= log K holds for the mean (the paper's footnote 5).
  With a target t (Section 3.3) also `test_target_gap`, the mean over the test batches of
  |I_b - t|, the notebook's test loss L_t.
- notebook bound: what the authors' notebook plots as its "testing" value: the mean of the
  estimator over 20 fresh *training* batches of K (its test placeholder is never read).
  Recorded beside the test bound under its own name.
- linear probe: g1 embeddings of all training and test images, then `probe.linear_probe`.
- diagnostics of g1 (Section 3.1, optional): see `diagnostics`.

The test pass computes g1(x_top), g2(x_bottom) and the per-batch bounds of a chunk of test
images in one compiled call, and its g1 embeddings are the probe's test embeddings: one pass
over the test set per evaluation. Images stay on the device as uint8; coupled noise is drawn
outside XLA (XLA's stateless random numbers differ from TensorFlow's kernels').
"""

import time

import numpy as np
import tensorflow as tf

from mi_repr_tf import data as data_lib
from mi_repr_tf import diagnostics as diagnostics_lib
from mi_repr_tf import probe as probe_lib

EMBED_BATCH = 2048
NOTEBOOK_BATCHES = 20
_NOTEBOOK_STREAM = 0x0B0_0C

EMBEDDING_KEYS = ("train_embeddings", "train_labels", "test_embeddings", "test_labels")


def noise_seeds(seed, step):
  """(train, test) noise seeds of the evaluation at `step`: fresh coupled noise each time,
  as the paper's noisy pixel baseline."""
  return 2 * (seed + step) + 1, 2 * (seed + step) + 2


class Evaluator:
  """Test bound, notebook bound, embeddings and diagnostics of one model and dataset."""

  def __init__(self, model, dataset, batch_size, seed=0, jit_compile=True, diagnostics=None,
               target=None):
    """`diagnostics`: a diagnostics.Settings for g1 (Section 3.1), or None for none."""
    self.model = model
    self.dataset = dataset
    self.batch_size = batch_size
    self.seed = seed
    self.target = target
    self.diagnostics = (diagnostics_lib.Diagnostics(model.g1, dataset, seed, diagnostics)
                        if diagnostics is not None else None)
    self._images = {"train": tf.constant(dataset.train.images),
                    "test": tf.constant(dataset.test.images)}
    k = batch_size

    def batch_bounds(x_top, x_bottom):  # [B * K, ...] -> [B] bound values
      shape = lambda x: tf.concat([[-1, k], tf.shape(x)[1:]], 0)
      return tf.map_fn(lambda xy: model.bound_and_loss(xy[0], xy[1])[0].value,
                       (tf.reshape(x_top, shape(x_top)), tf.reshape(x_bottom, shape(x_bottom))),
                       fn_output_signature=tf.float32)

    def test_chunk(x_top, x_bottom):
      full = tf.shape(x_top)[0] // k * k
      return model.g1(x_top, training=False), batch_bounds(x_top[:full], x_bottom[:full])

    def notebook(indices, noise):
      x_top, x_bottom = data_lib.split_halves(tf.gather(self._images["train"],
                                                        tf.reshape(indices, [-1])))
      if noise is not None:
        x_top, x_bottom = x_top + noise, x_bottom + noise
      return tf.reduce_mean(batch_bounds(x_top, x_bottom))

    compile_ = lambda fn: tf.function(fn, jit_compile=jit_compile, reduce_retracing=True)
    self._encode = compile_(lambda x: model.g1(x, training=False))
    self._test_chunk = compile_(test_chunk)
    self._notebook = compile_(notebook)
    self._views = tf.function(data_lib.eval_views, reduce_retracing=True)

  def _chunks(self, split, noise_seed):
    """(x_top, x_bottom) of each chunk of EMBED_BATCH images of `split`, in order."""
    images = self._images[split]
    noise_std = self.dataset.noise_std
    for i, start in enumerate(range(0, int(images.shape[0]), EMBED_BATCH)):
      yield self._views(images[start:start + EMBED_BATCH], noise_std,
                        tf.constant(noise_seed, tf.int64), tf.constant(i, tf.int64))

  def embed(self, split, noise_seed):
    """g1(x_top) of every image of `split` ('train' or 'test'): [N, dim] float32."""
    return np.concatenate([self._encode(x_top).numpy()
                           for x_top, _ in self._chunks(split, noise_seed)])

  def test_pass(self, noise_seed):
    """(g1 embeddings of the test set [N, dim], bounds of its complete batches [B])."""
    embeddings, bounds = [], []
    for x_top, x_bottom in self._chunks("test", noise_seed):
      z1, b = self._test_chunk(x_top, x_bottom)
      embeddings.append(z1.numpy())
      bounds.append(b.numpy())
    return np.concatenate(embeddings), np.concatenate(bounds)

  def notebook_bound(self, step):
    """Mean estimator value over NOTEBOOK_BATCHES training batches drawn from (seed, step)."""
    k, n = self.batch_size, NOTEBOOK_BATCHES
    seed = self.seed + _NOTEBOOK_STREAM
    indices = data_lib.step_indices(len(self.dataset.train), k, seed, n * step, n)
    noise = None
    if self.dataset.noise_std > 0:
      noise = self.dataset.noise_std * tf.reshape(
          data_lib.step_noise([k, *self.dataset.half_shape], seed, n * step, n),
          [n * k, *self.dataset.half_shape])
    return float(self._notebook(indices, noise))

  def measure(self, step):
    """Everything but the probe at `step`: (numbers, histograms, embeddings)."""
    train_seed, test_seed = noise_seeds(self.seed, step)
    t0 = time.perf_counter()
    test_emb, bounds = self.test_pass(test_seed)
    t1 = time.perf_counter()
    notebook = self.notebook_bound(step)
    t2 = time.perf_counter()
    train_emb = self.embed("train", train_seed)
    t3 = time.perf_counter()
    numbers = {"test_bound": float(np.mean(bounds)), "notebook_bound": notebook}
    if self.target is not None:
      numbers["test_target_gap"] = float(np.mean(np.abs(bounds - self.target)))
    seconds = {"test_pass": t1 - t0, "notebook_bound": t2 - t1, "embed_train": t3 - t2}
    histograms = {}
    if self.diagnostics is not None:
      diagnostic_numbers, histograms = self.diagnostics(step)
      numbers.update(diagnostic_numbers)
      seconds["diagnostics"] = time.perf_counter() - t3
    numbers["eval_seconds"] = seconds
    embeddings = dict(zip(EMBEDDING_KEYS, (train_emb, self.dataset.train.labels, test_emb,
                                           self.dataset.test.labels)))
    return numbers, histograms, embeddings


def probe(embeddings, seed):
  """Accuracy of the linear probe on `embeddings` (EMBEDDING_KEYS); safe in a thread."""
  return probe_lib.linear_probe(*(embeddings[k] for k in EMBEDDING_KEYS), seed=seed)


def pixel_baseline(dataset, seed=0):
  """Probe accuracy on the raw pixels of x_top (with coupled noise if the dataset has it)."""
  def pixels(split, noise_seed):
    xs, ys = [], []
    for x_top, _, y in data_lib.eval_batches(split, EMBED_BATCH, dataset.noise_std, noise_seed):
      xs.append(x_top.numpy().reshape(len(y), -1))
      ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys)
  train_x, train_y = pixels(dataset.train, noise_seed=2 * seed + 1)
  test_x, test_y = pixels(dataset.test, noise_seed=2 * seed + 2)
  return probe_lib.linear_probe(train_x, train_y, test_x, test_y, seed=seed)
