"""The adversarial experiment (Section 3.1, Appendix B, E2): step ratio, separate optimisers,
tiny runs of the paper's and the notebook's settings, resumed after a kill."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from mi_repr_tf.experiments import adversarial
from mi_repr_tf import data
from mi_repr_tf import realnvp
from mi_repr_tf import rundir
from mi_repr_tf import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIN = os.path.join(REPO, "gin", "adversarial_realnvp.gin")


def test_uniform_cross_entropy_known_answers():
  assert float(adversarial.uniform_cross_entropy(tf.zeros((3, 10)))) == pytest.approx(np.log(10))
  # logits (0, b): softmax (1, e^b) / (1 + e^b); H(u, p) = log(1 + e^b) - b / 2.
  b = 3.0
  value = float(adversarial.uniform_cross_entropy(tf.constant([[0.0, b]])))
  assert value == pytest.approx(np.log1p(np.exp(b)) - b / 2, rel=1e-6)


def snapshot(variables):
  return [v.numpy().copy() for v in variables]


def unchanged(before, variables):
  return all(np.array_equal(b, v.numpy()) for b, v in zip(before, variables))


def test_step_ratio_and_separate_optimisers(tiny_idx_dir):
  dataset = data.load_dataset("mnist", tiny_idx_dir)
  g1 = realnvp.realnvp(dataset.half_shape, num_couplings=2, hidden_units=(16,),
                       coupling="shift_and_scale", init_stddev=0.01, permutation_seed=0)
  model = adversarial.AdversarialModel(g1, 10)
  model(tf.zeros((2,) + dataset.half_shape))
  trainer = adversarial.AdversarialTrainer(model, 1e-2, 1e-2, jit_compile=False)
  h_vars, g_vars = trainer.classifier_variables, trainer.encoder_variables
  assert len(h_vars) == 2 and len(g_vars) == len(g1.trainable_variables) == 2 * 2 * 2
  assert not {id(v) for v in h_vars} & {id(v) for v in g_vars}
  iterator = iter(data.train_batches(dataset.train, 16, seed=0))

  # Warm-up: classifier steps only; g1 is untouched.
  g_before, h_before = snapshot(g_vars), snapshot(h_vars)
  losses = trainer.warmup(iterator, tf.constant(5)).numpy()
  assert losses.shape == (5,)
  assert int(trainer.classifier_optimizer.iterations) == 5
  assert int(trainer.encoder_optimizer.iterations) == 0
  assert unchanged(g_before, g_vars) and not unchanged(h_before, h_vars)

  # Rounds: k classifier steps per encoder step.
  c_loss, c_acc, e_loss = trainer.rounds(iterator, tf.constant(3), tf.constant(4))
  assert c_loss.shape == c_acc.shape == (12,) and e_loss.shape == (3,)
  assert int(trainer.classifier_optimizer.iterations) == 5 + 3 * 4
  assert int(trainer.encoder_optimizer.iterations) == 3

  # Each update moves only its own variables, through its own optimiser.
  batch = next(iterator)
  g_before, h_before = snapshot(g_vars), snapshot(h_vars)
  trainer.encoder_step(batch)
  assert unchanged(h_before, h_vars) and not unchanged(g_before, g_vars)
  g_before, h_before = snapshot(g_vars), snapshot(h_vars)
  trainer.classifier_step(batch)
  assert unchanged(g_before, g_vars) and not unchanged(h_before, h_vars)
  assert int(trainer.classifier_optimizer.iterations) == 18
  assert int(trainer.encoder_optimizer.iterations) == 4
  assert float(trainer.classifier_optimizer.learning_rate) == pytest.approx(1e-2)


def tiny(data_dir):
  bindings = {
      "dataset.data_dir": repr(data_dir),
      "realnvp.num_couplings": 2,
      "realnvp.hidden_units": [16],
      "adversarial.warmup_steps": 5,
      "adversarial.classifier_steps_per_encoder_step": 3,
      "run.num_steps": 6,
      "run.eval_every": 3,
      "adversarial.batch_size": 16,
      "run.steps_per_loop": 2,
      "run.jit_compile": False,
  }
  return [f"{k}={v}" for k, v in bindings.items()]


def same(a, b):
  assert [r["step"] for r in a] == [r["step"] for r in b]
  for x, y in zip(a, b):
    for key in set(x) | set(y):
      if key != "eval_seconds":
        assert x[key] == y[key], (x["step"], key)


NOTEBOOK_GIN = os.path.join(REPO, "gin", "adversarial_realnvp_notebook.gin")


def test_paper_setting_run_stays_invertible_and_resumes(tiny_idx_dir, tmp_path):
  """The paper's setting (shift-only couplings): invertible at every probe point, through
  adversarial training with a learning rate far above the paper's."""
  workdir = tmp_path / "run"
  bindings = tiny(tiny_idx_dir) + ["adversarial.encoder_learning_rate=1e-2"]
  records = train.run([GIN], bindings, str(workdir))[1]
  config = (workdir / "operative_config.gin").read_text()
  assert "run.experiment = 'adversarial'" in config and "realnvp.coupling = 'shift'" in config
  assert "adversarial.classifier_learning_rate = 0.0001" in config
  assert [r["step"] for r in records] == [0, 3, 6]
  # 5 warm-up steps, then 3 classifier steps per encoder step.
  assert [r["classifier_steps"] for r in records] == [0, 5 + 3 * 3, 5 + 3 * 6]
  for r in records:
    assert 0.0 <= r["accuracy"] <= 1.0
    assert r["reconstruction_error"] < 1e-4 and r["invertible"] is True
    assert "min_scale" not in r  # shift-only couplings have no scales
    assert r["encoder_loss"] >= np.log(10) - 1e-5  # H(uniform, p) >= log 10
  reader = tf.train.load_checkpoint(str(workdir / "checkpoints"))
  assert reader.get_tensor("encoder_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 6
  assert reader.get_tensor("classifier_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 23
  assert json.loads((workdir / "baseline.json").read_text())["pixel_accuracy"] > 0.5
  emb = rundir.read_embeddings(str(workdir))
  assert emb["train_embeddings"].shape == (512, 392)

  # Killed after recording step 3 but before its checkpoint: the resumed run repeats steps
  # 1-6 exactly (batches, warm-up state, optimisers) and records nothing twice.
  resumed = tmp_path / "resumed"
  shutil.copytree(workdir, resumed)
  (resumed / "embeddings.npz").unlink()
  ckpt_dir = resumed / "checkpoints"
  for step in (3, 6):
    for path in ckpt_dir.glob(f"ckpt-{step}.*"):
      path.unlink()
  tf.compat.v1.train.update_checkpoint_state(str(ckpt_dir), str(ckpt_dir / "ckpt-0"))
  with open(resumed / "results.jsonl", "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in records[:2])
  same(records, train.run([GIN], bindings, str(resumed))[1])
  np.testing.assert_array_equal(rundir.read_embeddings(str(resumed))["test_embeddings"],
                                emb["test_embeddings"])


def test_notebook_setting_records_the_smallest_scale(tiny_idx_dir, tmp_path):
  records = train.run([NOTEBOOK_GIN], tiny(tiny_idx_dir), str(tmp_path / "run"))[1]
  for r in records:
    assert 1e-7 <= r["min_scale"] < 10 and isinstance(r["invertible"], bool)


def test_min_scale_is_the_smallest_softplus_scale():
  g1 = realnvp.realnvp((2, 2, 1), num_couplings=1, hidden_units=(4,),
                       coupling="shift_and_scale", init_stddev=0.5, permutation_seed=0)
  x = tf.random.stateless_normal([5, 2, 2, 1], [1, 2])
  raw = g1.coupling_nets[0](tf.reshape(x, (5, 4))[:, :2])[:, 2:]
  expected = float(tf.reduce_min(tf.nn.softplus(raw))) + 1e-7
  assert g1.min_scale(x) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("binding,named", [
    ("adversarial.classifier_steps_per_encoder_step=0",
     "adversarial.classifier_steps_per_encoder_step=0"),
    ("adversarial.encoder_learning_rate=-1.0", "adversarial.encoder_learning_rate=-1.0"),
    ("adversarial.encoder='resnet'", "adversarial.encoder='resnet'"),
])
def test_bad_configuration_writes_nothing(tiny_idx_dir, tmp_path, binding, named):
  workdir = tmp_path / "run"
  with pytest.raises(train.ConfigError, match=named):
    train.run([GIN], tiny(tiny_idx_dir) + [binding], str(workdir))
  assert not workdir.exists()
