"""Evaluation: embeddings, the chunk-weighted test bound, and the probe split."""

import math

import keras
import numpy as np
import pytest

from mi_repr_tf import data
from mi_repr_tf import estimators
from mi_repr_tf import evaluation
from mi_repr_tf import model as model_lib


@pytest.fixture(scope="module")
def setup(tiny_idx_dir):
  dataset = data.load_dataset(name="mnist", data_dir=tiny_idx_dir, noise_std=0.1)
  keras.utils.set_random_seed(0)
  model = model_lib.build_model("mlp", "bilinear", "nce", dataset.half_shape)
  return dataset, model


def test_embeddings_are_g1_of_the_eval_views(setup):
  dataset, model = setup
  evaluator = evaluation.Evaluator(model, dataset, chunk_size=100, seed=3)
  embeddings, labels = evaluator.embed(dataset.test, noise_seed=7)
  expected = np.concatenate([model.g1(x).numpy() for x, _, _ in data.eval_batches(
      dataset.test, evaluation.EMBED_BATCH, 0.1, noise_seed=7)])
  np.testing.assert_allclose(embeddings, expected, rtol=1e-4, atol=1e-5)
  np.testing.assert_array_equal(labels, dataset.test.labels)
  other, _ = evaluator.embed(dataset.test, noise_seed=8)
  assert not np.allclose(embeddings, other)  # fresh noise for another seed


def test_test_bound_is_the_chunk_size_weighted_mean(setup):
  dataset, model = setup
  evaluator = evaluation.Evaluator(model, dataset, chunk_size=100, seed=3)
  values, sizes = [], []
  for x_top, x_bottom, _ in data.eval_batches(dataset.test, 100, 0.1, noise_seed=3):
    values.append(float(estimators.infonce(model((x_top, x_bottom))).value))
    sizes.append(len(x_top))
  assert sizes == [100, 100, 56]
  assert evaluator.test_bound() == pytest.approx(np.average(values, weights=sizes), rel=1e-4)
  assert evaluator.test_bound() <= math.log(100)


def test_evaluate_is_measure_plus_probe(setup):
  dataset, model = setup
  evaluator = evaluation.Evaluator(model, dataset, chunk_size=64, seed=0)
  numbers, _, embeddings = evaluator.evaluate(step=5)
  measured, _, again = evaluator.measure(step=5)
  assert measured["test_bound"] == numbers["test_bound"]
  np.testing.assert_array_equal(again["train_embeddings"], embeddings["train_embeddings"])
  accuracy, seconds = evaluator.probe(again)
  assert accuracy == numbers["accuracy"] and seconds >= 0
  assert set(numbers["eval_seconds"]) == {"test_bound", "embed", "probe"}
  assert embeddings["train_embeddings"].shape == (512, 100)


def test_pixel_baseline_on_structured_images(setup):
  dataset, _ = setup
  assert evaluation.pixel_baseline(dataset) > 0.9  # the class is a bright bar in x_top
