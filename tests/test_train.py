"""End-to-end runs of a tiny configuration: outputs, resuming, determinism and errors."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from mi_repr_tf import rundir
from mi_repr_tf import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIN = os.path.join(REPO, "gin", "critic_bilinear.gin")


def tiny(data_dir, num_steps=20, eval_every=10, **extra):
  bindings = {
      "dataset.name": "'mnist'",
      "dataset.data_dir": repr(data_dir),
      "train.num_steps": num_steps,
      "train.eval_every": eval_every,
      "train.batch_size": 16,
      "train.eval_chunk_size": 64,
      "train.steps_per_loop": 5,
  }
  bindings.update(extra)
  return [f"{k}={v}" for k, v in bindings.items()]


def cli(args, cwd, timeout=300):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", "mi_repr_tf.train", *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=timeout)


def gin_args(bindings):
  return [f"--gin_file={GIN}"] + [f"--gin_param={b}" for b in bindings]


def steps(records):
  return [r["step"] for r in records]


def _scalar_tags(event_dir):
  tags = {}
  for name in os.listdir(event_dir):
    for event in tf.compat.v1.train.summary_iterator(os.path.join(event_dir, name)):
      for value in event.summary.value:
        tags.setdefault(value.tag, []).append(event.step)
  return tags


def test_command_line_run_writes_every_output(tiny_idx_dir, tmp_path):
  workdir = tmp_path / "run"
  result = cli(gin_args(tiny(tiny_idx_dir)) + [f"--workdir={workdir}"], cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "eval step 20" in result.stderr and "steps/s" in result.stderr

  config = (workdir / "operative_config.gin").read_text()
  assert "train.critic = 'bilinear'" in config and "train.num_steps = 20" in config
  assert "dataset.data_dir" in config

  records = [json.loads(line) for line in (workdir / "results.jsonl").read_text().splitlines()]
  assert steps(records) == [0, 10, 20]
  for r in records:
    assert {"step", "train_loss", "test_bound", "accuracy"} <= set(r)
    assert 0.0 <= r["accuracy"] <= 1.0
    assert r["test_bound"] <= np.log(64) + 1e-5  # InfoNCE over chunks of <= 64
  assert records[-1]["test_bound"] > records[0]["test_bound"]  # training raised the bound

  tags = _scalar_tags(str(workdir / "tensorboard"))
  for tag in ("train_loss", "test_bound", "accuracy"):
    assert sorted(tags[tag]) == [0, 10, 20]
  assert tags["operative_config"] == [0]

  emb = rundir.read_embeddings(str(workdir))  # allow_pickle=False
  assert emb["train_embeddings"].shape == (512, 100) and emb["test_embeddings"].shape == (256, 100)
  np.testing.assert_array_equal(emb["test_labels"], np.arange(256) % 10)
  assert json.loads((workdir / "baseline.json").read_text())["pixel_accuracy"] > 0.5
  assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-20")

  # The same command again: the finished run is not trained again.
  before = (workdir / "results.jsonl").read_text()
  again = cli(gin_args(tiny(tiny_idx_dir)) + [f"--workdir={workdir}"], cwd=tmp_path)
  assert again.returncode == 0 and "already finished" in again.stderr
  assert (workdir / "results.jsonl").read_text() == before


def _run(workdir, bindings, async_probe=True):
  return train.run([GIN], bindings, str(workdir), async_probe=async_probe)[1]


def _same_results(a, b):
  assert steps(a) == steps(b)
  for x, y in zip(a, b):
    for key in ("train_loss", "test_bound", "accuracy"):
      assert x[key] == y[key], (x["step"], key)


@pytest.fixture(scope="module")
def reference(tiny_idx_dir, tmp_path_factory):
  """An uninterrupted run of 600 steps, evaluated every 100."""
  workdir = tmp_path_factory.mktemp("reference") / "run"
  _run(workdir, tiny(tiny_idx_dir, 600, 100))
  return workdir, rundir.read_results(str(workdir))


def test_same_seed_same_run_other_seed_other_run(tiny_idx_dir, tmp_path, reference):
  ref_dir, ref = reference
  again = _run(tmp_path / "again", tiny(tiny_idx_dir, 600, 100))
  _same_results(ref, again)
  a = tf.train.load_checkpoint(str(ref_dir / "checkpoints"))
  b = tf.train.load_checkpoint(str(tmp_path / "again" / "checkpoints"))
  names = [n for n, _ in tf.train.list_variables(str(ref_dir / "checkpoints"))
           if "VARIABLE_VALUE" in n]
  for name in names:
    np.testing.assert_array_equal(a.get_tensor(name), b.get_tensor(name))
  other = _run(tmp_path / "other", tiny(tiny_idx_dir, 600, 100, **{"train.seed": 1}))
  assert other[-1]["test_bound"] != ref[-1]["test_bound"]


def test_killed_run_resumes_without_losing_or_repeating_evaluations(tiny_idx_dir, tmp_path,
                                                                    reference):
  _, ref = reference
  workdir = tmp_path / "run"
  args = gin_args(tiny(tiny_idx_dir, 600, 100)) + [f"--workdir={workdir}"]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.Popen([sys.executable, "-m", "mi_repr_tf.train", *args], cwd=tmp_path,
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  results = workdir / "results.jsonl"
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None:
    if results.exists() and len(results.read_text().splitlines()) >= 3:
      break
    time.sleep(0.01)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  killed = rundir.read_results(str(workdir))
  assert 3 <= len(killed) < 7, "the run must be killed mid-way"
  assert not (workdir / "embeddings.npz").exists()
  with open(results, "a") as f:
    f.write('{"step": 700, "train_lo')  # a torn last line, as a kill during a write leaves

  resumed = cli(args, cwd=tmp_path)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "Resumed" in resumed.stderr
  final = rundir.read_results(str(workdir))
  _same_results(ref, final)  # every evaluation exactly once, equal to the uninterrupted run


def _drop_last_checkpoint(workdir):
  """The state of a run killed before its final checkpoint (ckpt-600) was written."""
  ckpt_dir = workdir / "checkpoints"
  for path in ckpt_dir.glob("ckpt-600.*"):
    path.unlink()
  tf.compat.v1.train.update_checkpoint_state(
      str(ckpt_dir), str(ckpt_dir / "ckpt-500"),
      all_model_checkpoint_paths=[str(ckpt_dir / "ckpt-400"), str(ckpt_dir / "ckpt-500")])


@pytest.mark.parametrize("window", ["before_results", "before_embeddings", "before_checkpoint",
                                    "probe_in_flight"])
def test_recovers_each_kill_window(tiny_idx_dir, tmp_path, reference, window):
  """With the probe in the foreground a run writes, at its last evaluation, the results line,
  then embeddings.npz, then the checkpoint. With the probe in the background it writes the
  probe's inputs to pending/, then the checkpoint, then (when the probe is done) the results
  line and embeddings.npz."""
  ref_dir, ref = reference
  workdir = tmp_path / "run"
  shutil.copytree(ref_dir, workdir)
  if window != "probe_in_flight":
    _drop_last_checkpoint(workdir)
  if window in ("before_results", "before_embeddings", "probe_in_flight"):
    (workdir / "embeddings.npz").unlink()
  if window in ("before_results", "probe_in_flight"):
    rundir.truncate_results(str(workdir), ref[:-1])
  if window == "probe_in_flight":
    record = {k: v for k, v in ref[-1].items() if k != "accuracy"}
    rundir.write_pending(str(workdir), 600, record, {}, rundir.read_embeddings(str(ref_dir)))
  results = _run(workdir, tiny(tiny_idx_dir, 600, 100),
                 async_probe=window == "probe_in_flight")
  _same_results(ref, results)
  assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-600")
  assert not list(workdir.glob("pending/step-*"))
  ref_emb = rundir.read_embeddings(str(ref_dir))
  new_emb = rundir.read_embeddings(str(workdir))
  for key in ref_emb:
    np.testing.assert_array_equal(ref_emb[key], new_emb[key])


def test_workdir_of_another_configuration_is_refused(tiny_idx_dir, tmp_path, reference):
  ref_dir, _ = reference
  workdir = tmp_path / "copy"
  shutil.copytree(ref_dir, workdir)
  with pytest.raises(train.ConfigError, match=r"different configuration(?s:.*)train.seed = 5"):
    _run(workdir, tiny(tiny_idx_dir, 600, 100, **{"train.seed": 5}))


@pytest.mark.parametrize("extra,named", [
    (["--gin_param=train.nope=1"], "nope"),
    (["--gin_param=train.estimator='foo'"], "train.estimator='foo'"),
    (["--gin_param=train.critic='mlp'"], "train.critic='mlp'"),
    (["--gin_param=dataset.name='bar'"], "dataset.name='bar'"),
    (["--gin_param=dataset.data_dir='/no/such/dir'"], "/no/such/dir"),
    (["--gin_file=gin/no_such_file.gin"], "no_such_file.gin"),
    (["--gin_param=train.seed="], "train.seed"),
    (["--gin_param=train.batch_size=1"], "train.batch_size=1"),
    (["--gin_param=distribute.strategy='tpu'"], "distribute.strategy='tpu'"),
    (["--gin_param=distribute.strategy='multi_worker'"], "TF_CONFIG"),
    (["--gin_param=distribute.strategy='mirrored'", "--gin_param=distribute.cpu_devices=2",
      "--gin_param=train.batch_size=15"], "train.batch_size=15"),
])
def test_bad_input_is_one_clear_error(tiny_idx_dir, tmp_path, extra, named):
  workdir = tmp_path / "run"
  result = cli(gin_args(tiny(tiny_idx_dir, 2, 1)) + extra + [f"--workdir={workdir}"],
               cwd=tmp_path)
  assert result.returncode == 2
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and named in result.stderr, result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  assert not workdir.exists()


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tiny_idx_dir,
                                                                          tmp_path):
  workdir = tmp_path / "run"
  bindings = tiny(tiny_idx_dir, 20, 10, **{"train.learning_rate": 1e12,
                                           "train.estimator": "'nwj'"})
  result = cli(gin_args(bindings) + [f"--workdir={workdir}"], cwd=tmp_path)
  assert result.returncode == 2
  assert "error: non-finite training loss" in result.stderr and "at step " in result.stderr
  assert steps(rundir.read_results(str(workdir))) == [0]
  assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-0")
  assert not (workdir / "embeddings.npz").exists()
