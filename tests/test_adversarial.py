"""The adversarial experiment (Section 3.1, Appendix B, E2): step ratio, separate optimisers,
and a tiny run through the command line, resumed after a kill."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from mi_repr_tf import adversarial
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
  losses = trainer.warmup(iterator, 5)
  assert losses.shape == (5,)
  assert int(trainer.classifier_optimizer.iterations) == 5
  assert int(trainer.encoder_optimizer.iterations) == 0
  assert unchanged(g_before, g_vars) and not unchanged(h_before, h_vars)

  # Rounds: k classifier steps per encoder step.
  c_loss, c_acc, e_loss = trainer.rounds(iterator, 3, 4)
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
      "adversarial.encoder_steps": 6,
      "adversarial.eval_every": 3,
      "adversarial.batch_size": 16,
      "adversarial.steps_per_loop": 2,
  }
  return [f"{k}={v}" for k, v in bindings.items()]


def same(a, b):
  assert [r["step"] for r in a] == [r["step"] for r in b]
  for x, y in zip(a, b):
    for key in set(x) | set(y):
      if key != "eval_seconds":
        assert x[key] == y[key], (x["step"], key)


def test_command_line_run_and_resume(tiny_idx_dir, tmp_path):
  workdir = tmp_path / "run"
  args = [f"--gin_file={GIN}"] + [f"--gin_param={b}" for b in tiny(tiny_idx_dir)]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  result = subprocess.run([sys.executable, "-m", "mi_repr_tf.train", *args,
                           f"--workdir={workdir}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Classifier warm-up: 5 steps" in result.stderr

  config = (workdir / "operative_config.gin").read_text()
  assert "experiment.name = 'adversarial'" in config
  assert "realnvp.coupling = 'shift_and_scale'" in config
  records = rundir.read_results(str(workdir))
  assert [r["step"] for r in records] == [0, 3, 6]
  # 5 warm-up steps, then 3 classifier steps per encoder step.
  assert [r["classifier_steps"] for r in records] == [0, 5 + 3 * 3, 5 + 3 * 6]
  for r in records:
    assert 0.0 <= r["accuracy"] <= 1.0
    assert r["reconstruction_error"] < 1e-5  # g1 stays exactly invertible
    assert r["encoder_loss"] >= np.log(10) - 1e-5  # H(uniform, p) >= log 10
  reader = tf.train.load_checkpoint(str(workdir / "checkpoints"))
  assert reader.get_tensor("encoder_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 6
  assert reader.get_tensor("classifier_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 23
  assert json.loads((workdir / "baseline.json").read_text())["pixel_accuracy"] > 0.5
  emb = rundir.read_embeddings(str(workdir))
  assert emb["train_embeddings"].shape == (512, 392)

  # Killed after recording step 6 but before its embeddings and checkpoint: the resumed run
  # repeats steps 4-6 exactly (batches, warm-up state, optimisers) and records nothing twice.
  resumed = tmp_path / "resumed"
  shutil.copytree(workdir, resumed)
  (resumed / "embeddings.npz").unlink()
  ckpt_dir = resumed / "checkpoints"
  for path in ckpt_dir.glob("ckpt-6.*"):
    path.unlink()
  tf.compat.v1.train.update_checkpoint_state(str(ckpt_dir), str(ckpt_dir / "ckpt-3"))
  rundir.truncate_results(str(resumed), records[:2])
  same(records, train.run([GIN], tiny(tiny_idx_dir), str(resumed))[1])
  np.testing.assert_array_equal(rundir.read_embeddings(str(resumed))["test_embeddings"],
                                emb["test_embeddings"])

  # A finished run is not trained again.
  before = (workdir / "results.jsonl").read_text()
  assert train.run([GIN], tiny(tiny_idx_dir), str(workdir))[1] == records
  assert (workdir / "results.jsonl").read_text() == before


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
