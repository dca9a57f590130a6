"""The two-view model: score matrix over the global batch, and under MirroredStrategy on two
CPU devices the same bound and the same update as on one device."""

import numpy as np
import pytest
import tensorflow as tf
import keras

from mi_repr_tf import model as model_lib

SHAPE = (14, 28, 1)


def _batch(k, seed):
  rng = np.random.default_rng(seed)
  top = rng.uniform(size=(k,) + SHAPE).astype(np.float32)
  bottom = np.clip(top[:, ::-1] + 0.1 * rng.standard_normal(top.shape), 0, 1).astype(np.float32)
  return top, bottom, np.zeros(k, np.int64)


def _build(critic, estimator, weights=None, optimizer=None):
  keras.utils.set_random_seed(0)
  model = model_lib.build_model("mlp", critic, estimator, SHAPE)
  optimizer = optimizer or keras.optimizers.Adam(1e-3)
  model.compile(optimizer=optimizer)
  optimizer.build(model.trainable_variables)
  if weights is not None:
    model.set_weights(weights)
  return model


def test_scores_are_the_k_by_k_matrix_of_g1_and_g2():
  model = _build("inner_product", "nce")
  top, bottom, _ = _batch(6, 0)
  expected = model.g1(top).numpy() @ model.g2(bottom).numpy().T
  np.testing.assert_allclose(model((top, bottom)).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_train_step_raises_the_bound():
  model = _build("bilinear", "nce")
  batch = _batch(32, 0)
  step = tf.function(model.train_step)
  first = float(step(batch)["bound"])
  for _ in range(30):
    last = float(step(batch)["bound"])
  assert last > first + 0.5
  assert int(model.optimizer.iterations.numpy()) == 31


@pytest.mark.parametrize("critic,estimator", [("bilinear", "nce"), ("concat", "nwj"),
                                              ("separable", "nce")])
def test_two_replicas_match_one_device(critic, estimator, two_cpu_strategy):
  """Plain SGD, so that equal weights after each step mean equal aggregated gradients (Adam
  would amplify float noise in near-zero gradients)."""
  reference = _build(critic, estimator, optimizer=keras.optimizers.SGD(0.05))
  initial = reference.get_weights()
  batches = [_batch(16, s) for s in range(3)]
  ref_step = tf.function(reference.train_step)
  ref_bounds = [float(ref_step(b)["bound"]) for b in batches]

  strategy = two_cpu_strategy
  with strategy.scope():
    mirrored = _build(critic, estimator, initial, optimizer=keras.optimizers.SGD(0.05))

  @tf.function
  def mirrored_step(per_replica):
    out = strategy.run(mirrored.train_step, args=(per_replica,))
    return strategy.experimental_local_results(out["bound"])

  bounds = []
  for batch in batches:
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda ctx, b=batch: tuple(x[8 * ctx.replica_id_in_sync_group:
                                     8 * (ctx.replica_id_in_sync_group + 1)] for x in b))
    replica_bounds = [float(v) for v in mirrored_step(per_replica)]
    assert replica_bounds[0] == pytest.approx(replica_bounds[1], abs=1e-6)
    bounds.append(replica_bounds[0])
  np.testing.assert_allclose(bounds, ref_bounds, rtol=1e-4, atol=1e-5)
  for a, b in zip(mirrored.get_weights(), reference.get_weights()):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  assert int(mirrored.optimizer.iterations.numpy()) == 3
