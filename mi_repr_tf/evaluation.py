"""Evaluation of a model at one training step (Section 3, "evaluation protocol").

- test bound: the estimator's value over the whole test set, in chunks of `chunk_size`
  (512 in the authors' notebook) averaged with weights proportional to the chunk sizes. Each
  chunk's InfoNCE is <= log(chunk size).
- linear probe: g1 embeddings of all training and test images, then `probe.linear_probe`.
- diagnostics of g1 (Section 3.1, optional): Jacobian condition numbers and, for invertible
  encoders, the reconstruction error (see `diagnostics`).
"""

import time

import numpy as np
import tensorflow as tf

from mi_repr_tf import data as data_lib
from mi_repr_tf import diagnostics as diagnostics_lib
from mi_repr_tf import probe as probe_lib

EMBED_BATCH = 2048


class Evaluator:
  """Computes test bound, embeddings and probe accuracy for one model and dataset."""

  def __init__(self, model, dataset, chunk_size=512, seed=0, jit_compile=True,
               diagnostics=None):
    """`diagnostics`: a diagnostics.Settings for g1 (Section 3.1), or None for none."""
    self.model = model
    self.dataset = dataset
    self.chunk_size = chunk_size
    self.seed = seed
    self.diagnostics = (diagnostics_lib.Diagnostics(model.g1, dataset, seed, diagnostics)
                        if diagnostics is not None else None)
    self._images = {}  # id(split) -> its uint8 images as a tensor, made once

    encode = tf.function(lambda x: model.g1(x, training=False), jit_compile=jit_compile,
                         reduce_retracing=True)

    def embed_chunk(images, chunk_index, noise_seed):
      # The views (and their noise) outside XLA, so they equal data.eval_batches' exactly.
      x_top, _ = data_lib.eval_views(images, dataset.noise_std, noise_seed, chunk_index)
      return encode(x_top)

    self._embed_chunk = tf.function(embed_chunk, reduce_retracing=True)
    self._bound = tf.function(lambda x, y: model.bound_and_loss(x, y, training=False)[0],
                              jit_compile=jit_compile, reduce_retracing=True)

  def test_bound(self):
    """Chunk-size-weighted mean of the estimator over the test set (fixed test noise)."""
    total, count = 0.0, 0
    for x_top, x_bottom, _ in data_lib.eval_batches(
        self.dataset.test, self.chunk_size, self.dataset.noise_std, noise_seed=self.seed):
      n = int(x_top.shape[0])
      if n < 2:  # a one-pair chunk has no negatives
        continue
      total += float(self._bound(x_top, x_bottom)) * n
      count += n
    return total / count

  def embed(self, split, noise_seed):
    """g1(x_top) for every example of `split`: ([N, dim] float32, [N] labels).

    The same inputs as `data.eval_batches(split, EMBED_BATCH, noise_std, noise_seed)`, without
    a tf.data pipeline: the images stay on the device and each chunk is one compiled call.
    """
    if id(split) not in self._images:
      self._images[id(split)] = tf.constant(split.images)
    images = self._images[id(split)]
    embeddings = [self._embed_chunk(images[start:start + EMBED_BATCH],
                                    tf.constant(i, tf.int64), tf.constant(noise_seed, tf.int64))
                  for i, start in enumerate(range(0, len(split), EMBED_BATCH))]
    return np.concatenate([e.numpy() for e in embeddings]), split.labels

  def measure(self, step):
    """Everything but the probe at `step`: (numbers, histograms, embeddings).

    numbers: test_bound, eval_seconds (test_bound, embed) and the diagnostics' numbers;
    histograms: the diagnostics' arrays for TensorBoard; embeddings: g1 of all training and
    test images with their labels, what the probe is fit on. With coupled noise the
    embeddings see fresh noise at every evaluation (drawn from the seed and the step), as the
    paper's noisy pixel baseline does.
    """
    t0 = time.perf_counter()
    bound = self.test_bound()
    t1 = time.perf_counter()
    train_emb, train_y = self.embed(self.dataset.train, noise_seed=2 * (self.seed + step) + 1)
    test_emb, test_y = self.embed(self.dataset.test, noise_seed=2 * (self.seed + step) + 2)
    t2 = time.perf_counter()
    numbers = {"test_bound": bound, "eval_seconds": {"test_bound": t1 - t0, "embed": t2 - t1}}
    histograms = {}
    if self.diagnostics is not None:
      diagnostic_numbers, histograms = self.diagnostics()
      numbers.update(diagnostic_numbers)
    embeddings = {"train_embeddings": train_emb, "train_labels": train_y,
                  "test_embeddings": test_emb, "test_labels": test_y}
    return numbers, histograms, embeddings

  def probe(self, embeddings):
    """(accuracy, seconds) of the linear probe on `embeddings`; safe to run in a thread."""
    t0 = time.perf_counter()
    accuracy = probe_lib.linear_probe(embeddings["train_embeddings"],
                                      embeddings["train_labels"],
                                      embeddings["test_embeddings"],
                                      embeddings["test_labels"], seed=self.seed)
    return accuracy, time.perf_counter() - t0

  def evaluate(self, step):
    """All evaluation numbers at `step` (with `accuracy`), histograms and embeddings."""
    numbers, histograms, embeddings = self.measure(step)
    numbers["accuracy"], numbers["eval_seconds"]["probe"] = self.probe(embeddings)
    return numbers, histograms, embeddings


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
