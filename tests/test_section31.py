"""Tiny runs of the Section 3.1 gin files E1 (invertible RealNVP) and E3 (skip MLP with coupled
noise): their diagnostics reach results.jsonl and TensorBoard."""

import os

import numpy as np
import tensorflow as tf

from mi_repr_tf import rundir
from mi_repr_tf import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def gin_path(name):
  return os.path.join(REPO, "gin", name)


def tiny(data_dir, **extra):
  bindings = {
      "dataset.data_dir": repr(data_dir),
      "run.num_steps": 20,
      "run.eval_every": 10,
      "train.batch_size": 16,
      "run.steps_per_loop": 10,
      "run.jit_compile": False,  # compiling the 392-dim encoders costs more than these steps
  }
  bindings.update(extra)
  return [f"{k}={v}" for k, v in bindings.items()]


def summaries(event_dir):
  tags = {}
  for name in os.listdir(event_dir):
    for event in tf.compat.v1.train.summary_iterator(os.path.join(event_dir, name)):
      for value in event.summary.value:
        tags.setdefault(value.tag, []).append(
            (event.step, value.metadata.plugin_data.plugin_name))
  return tags


def test_invertible_realnvp_run(tiny_idx_dir, tmp_path):
  workdir = tmp_path / "e1"
  bindings = tiny(tiny_idx_dir, **{"realnvp.num_couplings": 2, "realnvp.hidden_units": [16],
                                   "train.learning_rate": 1e-3})
  records = train.run([gin_path("invertible_realnvp.gin")], bindings, str(workdir))[1]
  config = (workdir / "operative_config.gin").read_text()
  assert "train.encoder = 'realnvp'" in config and "realnvp.coupling = 'shift'" in config
  assert [r["step"] for r in records] == [0, 10, 20]
  assert records[-1]["test_bound"] > records[0]["test_bound"]  # the bound was maximised ...
  for r in records:
    assert r["reconstruction_error"] < 1e-5  # ... by an encoder that stays invertible
    assert "jacobian_log_condition_percentiles" not in r
  tags = summaries(str(workdir / "tensorboard"))
  assert [s for s, _ in tags["reconstruction_error"]] == [0, 10, 20]
  assert rundir.read_embeddings(str(workdir))["test_embeddings"].shape == (256, 392)


def test_noninvertible_mlp_run(tiny_idx_dir, tmp_path):
  workdir = tmp_path / "e3"
  bindings = tiny(tiny_idx_dir, **{"diagnostics.num_inputs": 8})
  records = train.run([gin_path("noninvertible_mlp.gin")], bindings, str(workdir))[1]
  config = (workdir / "operative_config.gin").read_text()
  assert "dataset.noise_std = 0.05" in config and "diagnostics.jacobian = True" in config
  assert [r["step"] for r in records] == [0, 10, 20]
  start = records[0]["jacobian_log_condition_percentiles"]
  end = records[-1]["jacobian_log_condition_percentiles"]
  assert len(start) == len(end) == 6
  assert np.all(np.diff(start) >= 0) and np.all(np.diff(end) >= 0)
  assert 0 < start[-1] < 0.05  # near the identity at initialisation (condition number ~1)
  assert end[0] > start[-1]  # training made g1 worse conditioned at every one of the inputs
  assert "reconstruction_error" not in records[0]  # the skip MLP has no exact inverse
  tags = summaries(str(workdir / "tensorboard"))
  assert tags["jacobian/log_condition_number"] == [(0, "histograms"), (10, "histograms"),
                                                   (20, "histograms")]
  assert [s for s, _ in tags["jacobian_log_condition_p100"]] == [0, 10, 20]
