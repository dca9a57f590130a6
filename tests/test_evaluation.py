"""Evaluation: embeddings, the test bound on batches of K, the notebook's bound, L_t."""

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


def _eval_views(dataset, split, noise_seed):
  """The inputs the evaluation sees: chunks of EMBED_BATCH with noise from (seed, chunk)."""
  return [(x_top, x_bottom) for x_top, x_bottom, _ in data.eval_batches(
      getattr(dataset, split), evaluation.EMBED_BATCH, dataset.noise_std, noise_seed)]


def test_embeddings_are_g1_of_the_eval_views(setup):
  dataset, model = setup
  evaluator = evaluation.Evaluator(model, dataset, batch_size=32, seed=3, jit_compile=False)
  embeddings = evaluator.embed("test", noise_seed=7)
  expected = np.concatenate([model.g1(x).numpy() for x, _ in _eval_views(dataset, "test", 7)])
  np.testing.assert_allclose(embeddings, expected, rtol=1e-4, atol=1e-5)
  assert not np.allclose(embeddings, evaluator.embed("test", noise_seed=8))  # fresh noise


@pytest.mark.parametrize("target", [None, 1.0])
def test_test_bound_is_the_mean_over_test_batches_of_k(setup, target):
  """The paper's test bound: per-batch InfoNCE on batches of K (the training batch size),
  averaged; never above log K. The test loss L_t is the mean of per-batch |I_b - t|."""
  dataset, model = setup
  k = 32
  evaluator = evaluation.Evaluator(model, dataset, batch_size=k, seed=3, jit_compile=False,
                                   target=target)
  numbers, _, embeddings = evaluator.measure(step=4)
  _, test_seed = evaluation.noise_seeds(3, 4)
  x_top, x_bottom = (np.concatenate(v) for v in zip(*_eval_views(dataset, "test", test_seed)))
  values = [float(estimators.infonce(model((x_top[i:i + k], x_bottom[i:i + k]))).value)
            for i in range(0, len(x_top) - k + 1, k)]
  assert len(values) == 256 // k  # complete batches only
  assert numbers["test_bound"] == pytest.approx(np.mean(values), rel=1e-4, abs=1e-5)
  assert numbers["test_bound"] <= math.log(k)
  if target is not None:
    gap = np.mean(np.abs(np.array(values) - target))
    assert numbers["test_target_gap"] == pytest.approx(gap, rel=1e-4)
    assert numbers["test_target_gap"] >= abs(np.mean(values) - target)
  # The probe's test embeddings are g1 of the same test inputs.
  np.testing.assert_allclose(embeddings["test_embeddings"], model.g1(x_top).numpy(),
                             rtol=1e-4, atol=1e-5)


def test_notebook_bound_is_the_mean_over_20_training_batches(setup):
  dataset, model = setup
  k = 16
  evaluator = evaluation.Evaluator(model, dataset, batch_size=k, seed=2, jit_compile=False)
  seed = 2 + evaluation._NOTEBOOK_STREAM
  indices = data.step_indices(len(dataset.train), k, seed, 20 * 7, 20).numpy()
  noise = data.step_noise([k, *dataset.half_shape], seed, 20 * 7, 20).numpy()
  values = []
  for i in range(20):
    x_top, x_bottom = data.split_halves(dataset.train.images[indices[i]])
    n = dataset.noise_std * noise[i]
    values.append(float(estimators.infonce(model((x_top + n, x_bottom + n))).value))
  assert evaluator.notebook_bound(step=7) == pytest.approx(np.mean(values), rel=1e-4)
  assert evaluator.notebook_bound(step=8) != evaluator.notebook_bound(step=7)  # fresh batches


def test_measure_and_probe(setup):
  dataset, model = setup
  evaluator = evaluation.Evaluator(model, dataset, batch_size=64, seed=0, jit_compile=True)
  numbers, _, embeddings = evaluator.measure(step=5)
  again, _, _ = evaluator.measure(step=5)
  assert again["test_bound"] == pytest.approx(numbers["test_bound"], abs=1e-6)
  assert set(numbers["eval_seconds"]) == {"test_pass", "notebook_bound", "embed_train"}
  assert embeddings["train_embeddings"].shape == (512, 100)
  assert 0 <= evaluation.probe(embeddings, seed=0) <= 1


def test_pixel_baseline_on_structured_images(setup):
  dataset, _ = setup
  assert evaluation.pixel_baseline(dataset) > 0.9  # the class is a bright bar in x_top
