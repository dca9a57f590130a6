"""End-to-end runs of a tiny configuration: outputs, resuming, determinism, and the run
directory's guarantees under faults (kills, torn and corrupted files, concurrent starts,
deleted configs, damaged checkpoints, Ctrl-C). In process, except the command line itself."""

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

from mi_repr_tf import experiments
from mi_repr_tf import rundir
from mi_repr_tf import runner
from mi_repr_tf import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIN = os.path.join(REPO, "gin", "critic_bilinear.gin")


def tiny(data_dir, num_steps=20, eval_every=10, **extra):
  bindings = {
      "dataset.name": "'mnist'",
      "dataset.data_dir": repr(data_dir),
      "run.num_steps": num_steps,
      "run.eval_every": eval_every,
      "train.batch_size": 16,
      "run.steps_per_loop": 5,
      "mlp.hidden_units": [32],
      "mlp.dim": 16,
      "run.jit_compile": False,  # XLA is tested by the command-line run; compiling is slow
  }
  bindings.update(extra)
  return [f"{k}={v}" for k, v in bindings.items()]


def gin_args(bindings):
  return [f"--gin_file={GIN}"] + [f"--gin_param={b}" for b in bindings]


def steps(records):
  return [r["step"] for r in records]


def _run(workdir, bindings, async_probe=True):
  return train.run([GIN], bindings, str(workdir), async_probe=async_probe)[1]


def _same_results(a, b):
  assert steps(a) == steps(b)
  for x, y in zip(a, b):
    for key in ("train_loss", "test_bound", "notebook_bound", "accuracy"):
      assert x[key] == y[key], (x["step"], key)


def _results(workdir):
  return rundir.read_results(str(workdir)).records


def _scalar_tags(event_dir):
  tags = {}
  for name in os.listdir(event_dir):
    for event in tf.compat.v1.train.summary_iterator(os.path.join(event_dir, name)):
      for value in event.summary.value:
        tags.setdefault(value.tag, []).append(event.step)
  return tags


def _main(argv):
  """The command line's main() on `argv` parsed as its flags, in process; its exit status
  (absl's app.run exits with main's return value). The command itself is started as a
  process by test_killed_run_resumes_without_losing_or_repeating_evaluations."""
  train.FLAGS(["train", *argv])
  try:
    return train.main(["train"])
  finally:
    train.FLAGS.unparse_flags()


def test_command_line_run_writes_every_output(tiny_idx_dir, tmp_path, caplog):
  workdir = tmp_path / "run"
  bindings = tiny(tiny_idx_dir, **{"run.jit_compile": True})
  with caplog.at_level("INFO"):
    assert _main(gin_args(bindings) + [f"--workdir={workdir}", "--log_every_secs=0"]) == 0
  assert "eval step 20" in caplog.text and "steps/s" in caplog.text
  assert f"Done: {workdir} (step 20" in caplog.text

  config = (workdir / "operative_config.gin").read_text()
  assert "train.critic = 'bilinear'" in config and "run.num_steps = 20" in config
  assert "run.experiment_id = 'E4'" in config and "dataset.data_dir" in config

  records = _results(workdir)
  assert steps(records) == [0, 10, 20]
  for r in records:
    assert {"step", "train_loss", "test_bound", "notebook_bound", "accuracy"} <= set(r)
    assert 0.0 <= r["accuracy"] <= 1.0
    assert r["test_bound"] <= np.log(16) + 1e-5  # InfoNCE on test batches of K = 16
  assert records[-1]["test_bound"] > records[0]["test_bound"]  # training raised the bound

  tags = _scalar_tags(str(workdir / "tensorboard"))
  for tag in ("train_loss", "test_bound", "accuracy"):
    assert sorted(tags[tag]) == [0, 10, 20]
  assert tags["operative_config"] == [0]

  emb = rundir.read_embeddings(str(workdir))  # allow_pickle=False
  assert emb["train_embeddings"].shape == (512, 16) and emb["test_embeddings"].shape == (256, 16)
  np.testing.assert_array_equal(emb["test_labels"], np.arange(256) % 10)
  assert json.loads((workdir / "baseline.json").read_text())["pixel_accuracy"] > 0.5
  assert json.loads((workdir / "dataset.json").read_text())["name"] == "mnist"
  assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-20")
  assert rundir.run_status(str(workdir)) == rundir.FINISHED

  # The same run again: the finished run is not trained again.
  before = (workdir / "results.jsonl").read_text()
  assert _run(workdir, bindings) == records
  assert (workdir / "results.jsonl").read_text() == before


@pytest.fixture(scope="module")
def reference(tiny_idx_dir, tmp_path_factory):
  """An uninterrupted run of 60 steps, evaluated every 10."""
  workdir = tmp_path_factory.mktemp("reference") / "run"
  _run(workdir, tiny(tiny_idx_dir, 60, 10))
  return workdir, _results(workdir)


def _copy(reference, tmp_path):
  ref_dir, ref = reference
  workdir = tmp_path / "run"
  shutil.copytree(ref_dir, workdir)
  return workdir, ref


def test_same_seed_same_run_other_seed_other_run(tiny_idx_dir, tmp_path, reference):
  ref_dir, ref = reference
  again = _run(tmp_path / "again", tiny(tiny_idx_dir, 60, 10))
  _same_results(ref, again)
  a = tf.train.load_checkpoint(str(ref_dir / "checkpoints"))
  b = tf.train.load_checkpoint(str(tmp_path / "again" / "checkpoints"))
  names = [n for n, _ in tf.train.list_variables(str(ref_dir / "checkpoints"))
           if "VARIABLE_VALUE" in n]
  for name in names:
    np.testing.assert_array_equal(a.get_tensor(name), b.get_tensor(name))
  other = _run(tmp_path / "other", tiny(tiny_idx_dir, 60, 10, **{"run.seed": 1}))
  assert other[-1]["test_bound"] != ref[-1]["test_bound"]


def test_killed_run_resumes_without_losing_or_repeating_evaluations(tiny_idx_dir, tmp_path,
                                                                    reference):
  """A real SIGKILL of the command line mid-run, then a resume in process."""
  _, ref = reference
  workdir = tmp_path / "run"
  args = gin_args(tiny(tiny_idx_dir, 60, 10)) + [f"--workdir={workdir}"]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.Popen([sys.executable, "-m", "mi_repr_tf.train", "--log_every_secs=0",
                           *args], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  results = workdir / "results.jsonl"
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None:
    if results.exists() and len(results.read_text().splitlines()) >= 2:
      break
    time.sleep(0.01)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  killed = _results(workdir)
  assert 2 <= len(killed) < 7, "the run must be killed mid-way"
  with open(results, "a") as f:
    f.write('{"step": 70, "train_lo')  # a torn last line, as a kill during a write leaves
  _same_results(ref, _run(workdir, tiny(tiny_idx_dir, 60, 10)))


def _drop_checkpoints_after(workdir, step):
  ckpt_dir = workdir / "checkpoints"
  kept = []
  for index in sorted(ckpt_dir.glob("ckpt-*.index")):
    s = int(index.name[5:-6])
    if s > step:
      for path in ckpt_dir.glob(f"ckpt-{s}.*"):
        path.unlink()
    else:
      kept.append(str(ckpt_dir / f"ckpt-{s}"))
  tf.compat.v1.train.update_checkpoint_state(str(ckpt_dir), kept[-1],
                                             all_model_checkpoint_paths=kept)


def _truncate_results(workdir, records):
  with open(workdir / "results.jsonl", "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in records)


@pytest.mark.parametrize("window", ["before_results", "before_embeddings", "before_checkpoint",
                                    "probe_in_flight"])
def test_recovers_each_kill_window(tiny_idx_dir, tmp_path, reference, window):
  """Foreground probe, last evaluation: embeddings.npz, then the results line, then the
  checkpoint. Background probe: pending/ inputs, the checkpoint, then (probe done)
  embeddings.npz and the results line."""
  workdir, ref = _copy(reference, tmp_path)
  if window != "probe_in_flight":
    _drop_checkpoints_after(workdir, 50)
  if window in ("before_results", "before_embeddings", "probe_in_flight"):
    (workdir / "embeddings.npz").unlink()
  if window in ("before_results", "before_embeddings", "probe_in_flight"):
    _truncate_results(workdir, ref[:-1])
  if window == "probe_in_flight":
    record = {k: v for k, v in ref[-1].items() if k != "accuracy"}
    rundir.write_pending(str(workdir), 60, record, {},
                         rundir.read_embeddings(str(reference[0])))
  results = _run(workdir, tiny(tiny_idx_dir, 60, 10), async_probe=window == "probe_in_flight")
  _same_results(ref, results)
  assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-60")
  assert not list(workdir.glob("pending/step-*"))
  ref_emb = rundir.read_embeddings(str(reference[0]))
  new_emb = rundir.read_embeddings(str(workdir))
  for key in ref_emb:
    np.testing.assert_array_equal(ref_emb[key], new_emb[key])


@pytest.mark.parametrize("damage", ["torn_last_line", "corrupt_middle_line", "not_an_object"])
def test_damaged_results_are_redone_not_lost(tiny_idx_dir, tmp_path, reference, damage):
  """The checkpoints are past the damaged evaluation: it is evaluated again from the
  checkpoint before it, and the valid lines after a corrupted one are kept."""
  workdir, ref = _copy(reference, tmp_path)
  lines = (workdir / "results.jsonl").read_text().splitlines(keepends=True)
  if damage == "torn_last_line":  # step 60's line torn: the checkpoint of 60 exists
    lines[-1] = lines[-1][:-20]
  elif damage == "corrupt_middle_line":
    lines[-2] = "{garbage\n"  # step 50's line; the checkpoint of step 40 is kept
  else:
    lines[-2] = "[1, 2]\n"
  (workdir / "results.jsonl").write_text("".join(lines))
  _same_results(ref, _run(workdir, tiny(tiny_idx_dir, 60, 10)))
  assert list(workdir.glob("results.jsonl.damaged-*"))  # the original is kept


def test_lost_evaluation_without_its_checkpoint_is_refused(tiny_idx_dir, tmp_path, reference):
  workdir, ref = _copy(reference, tmp_path)
  _truncate_results(workdir, [r for r in ref if r["step"] != 20])  # ckpt-10 is long gone
  with pytest.raises(rundir.RunDirError, match="step 20"):
    _run(workdir, tiny(tiny_idx_dir, 60, 10))


@pytest.mark.parametrize("damage", ["flipped_bytes", "empty_index"])
def test_damaged_latest_checkpoint_falls_back_to_the_previous(tiny_idx_dir, tmp_path,
                                                              reference, damage):
  workdir, ref = _copy(reference, tmp_path)
  _truncate_results(workdir, ref[:-1])
  (workdir / "embeddings.npz").unlink()
  ckpt = workdir / "checkpoints"
  if damage == "flipped_bytes":
    data_file = next(ckpt.glob("ckpt-60.data-*"))
    data = bytearray(data_file.read_bytes())
    data[100:164] = bytes(255 - b for b in data[100:164])
    data_file.write_bytes(bytes(data))
  else:
    (ckpt / "ckpt-60.index").write_bytes(b"")
  _same_results(ref, _run(workdir, tiny(tiny_idx_dir, 60, 10)))


def test_busy_workdir_is_refused_naming_the_holder(tiny_idx_dir, tmp_path, reference):
  workdir, ref = _copy(reference, tmp_path)
  holder = subprocess.Popen([sys.executable, "-c", (
      "import sys, time; from mi_repr_tf import rundir; rundir.Lock(sys.argv[1]).acquire(); "
      "print('locked', flush=True); time.sleep(60)"), str(workdir)], stdout=subprocess.PIPE,
                            text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(rundir.WorkdirBusy, match=f"process {holder.pid}"):
      _run(workdir, tiny(tiny_idx_dir, 60, 10))
  finally:
    holder.kill()
    holder.wait()
  assert _results(workdir) == ref  # untouched


def test_deleted_config_cannot_bypass_the_configuration_check(tiny_idx_dir, tmp_path,
                                                              reference):
  workdir, ref = _copy(reference, tmp_path)
  (workdir / "operative_config.gin").unlink()
  with pytest.raises(rundir.RunDirError, match="operative_config.gin"):
    _run(workdir, tiny(tiny_idx_dir, 60, 10, **{"train.learning_rate": 1e-2}))
  assert not (workdir / "operative_config.gin").exists()
  assert _results(workdir) == ref


def _snapshot(workdir):
  return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in workdir.rglob("*")}


@pytest.mark.parametrize("changed,message", [
    ({"num_train": 999}, r"999 training, 256 test(?s:.*)512 training, 256 test"),
    ({"fingerprint": "0" * 64}, r"changed: fingerprint")])
def test_other_data_than_at_the_first_start_is_refused(tiny_idx_dir, tmp_path, reference,
                                                       changed, message):
  """Same configuration, but the files under dataset.data_dir are not those of the run's
  first start (as if dataset.json recorded other data): refused, nothing written."""
  workdir, _ = _copy(reference, tmp_path)
  first = json.loads((workdir / "dataset.json").read_text())
  assert (first["num_train"], first["num_test"]) == (512, 256)
  assert len(first["fingerprint"]) == 64
  (workdir / "dataset.json").write_text(json.dumps(dict(first, **changed)))
  before = _snapshot(workdir)
  with pytest.raises(train.ConfigError, match=message):
    _run(workdir, tiny(tiny_idx_dir, 60, 10))
  assert _snapshot(workdir) == before


def test_dataset_json_that_is_not_a_dataset_is_refused(tiny_idx_dir, tmp_path, reference):
  workdir, _ = _copy(reference, tmp_path)
  (workdir / "dataset.json").write_text("[1, 2]")
  with pytest.raises(rundir.RunDirError, match="dataset.json does not describe a dataset"):
    _run(workdir, tiny(tiny_idx_dir, 60, 10))


def test_workdir_of_another_configuration_is_refused(tiny_idx_dir, tmp_path, reference):
  workdir, _ = _copy(reference, tmp_path)
  with pytest.raises(train.ConfigError, match=r"different configuration(?s:.*)run.seed = 5"):
    _run(workdir, tiny(tiny_idx_dir, 60, 10, **{"run.seed": 5}))


def test_ctrl_c_stops_cleanly_and_the_run_resumes(tiny_idx_dir, tmp_path, reference,
                                                  monkeypatch):
  _, ref = reference
  workdir = tmp_path / "run"
  original = experiments.two_view.TwoView.train

  def interrupted(self, step, n):
    if step == 30:
      raise KeyboardInterrupt
    return original(self, step, n)

  monkeypatch.setattr(experiments.two_view.TwoView, "train", interrupted)
  with pytest.raises(runner.Interrupted, match="Run the same command again"):
    _run(workdir, tiny(tiny_idx_dir, 60, 10))
  monkeypatch.setattr(experiments.two_view.TwoView, "train", original)
  assert steps(_results(workdir))[-1] <= 30
  _same_results(ref, _run(workdir, tiny(tiny_idx_dir, 60, 10)))


BAD_INPUTS = [
    (["train.nope=1"], "nope"),
    (["train.estimator='foo'"], "train.estimator='foo'"),
    (["train.critic='mlp'"], "train.critic='mlp'"),
    (["dataset.name='bar'"], "dataset.name='bar'"),
    (["dataset.data_dir='/no/such/dir'"], "/no/such/dir"),
    (["run.seed="], "run.seed"),
    (["run.seed='abc'"], "run.seed='abc'"),
    (["run.seed=-1"], "run.seed=-1"),
    (["run.num_steps=True"], "run.num_steps=True"),
    (["dataset.noise_std='x'"], "dataset.noise_std"),
    (["dataset.noise_std=1e999"], "dataset.noise_std"),
    (["train.learning_rate=(1e-4"], "train.learning_rate"),
    (["train.batch_size=1"], "train.batch_size=1"),
    (["train.batch_size=100000"], "train.batch_size=100000"),
    (["distribute.strategy='tpu'"], "distribute.strategy='tpu'"),
    (["distribute.strategy='multi_worker'"], "TF_CONFIG"),
    (["distribute.strategy='mirrored'", "distribute.cpu_devices=2", "train.batch_size=15"],
     "train.batch_size=15"),
]


@pytest.mark.parametrize("extra,named", BAD_INPUTS)
def test_bad_input_is_one_clear_error_and_leaves_nothing(tiny_idx_dir, tmp_path, extra, named):
  workdir = tmp_path / "run"
  t0 = time.perf_counter()
  with pytest.raises(train.ConfigError) as error:
    _run(workdir, tiny(tiny_idx_dir, 2, 1) + extra)
  assert named in train._message(error.value)
  assert time.perf_counter() - t0 < 20  # refused before any training or probe
  assert not workdir.exists()


def test_bad_workdirs_are_one_clear_error(tiny_idx_dir, tmp_path):
  a_file = tmp_path / "file"
  a_file.write_text("x")
  with pytest.raises(train.ConfigError, match="is a file"):
    _run(a_file, tiny(tiny_idx_dir, 2, 1))
  read_only = tmp_path / "ro"
  read_only.mkdir()
  read_only.chmod(0o500)
  try:
    if os.access(read_only, os.W_OK):
      pytest.skip("running as a user who can write anywhere (root)")
    with pytest.raises(train.ConfigError, match="cannot be created|not writable"):
      _run(read_only / "run", tiny(tiny_idx_dir, 2, 1))
  finally:
    read_only.chmod(0o700)


def test_command_line_error_is_one_line_and_exit_2(tiny_idx_dir, tmp_path, capsys):
  """main() in process (`_main`): a bad binding is one line and exit status 2, and nothing
  is written."""
  workdir = tmp_path / "run"
  assert _main(gin_args(tiny(tiny_idx_dir, 2, 1)) + ["--gin_param=train.estimator='foo'",
                                                     f"--workdir={workdir}"]) == 2
  stderr = capsys.readouterr().err
  errors = [line for line in stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "train.estimator='foo'" in errors[0], stderr[-2000:]
  assert "Traceback" not in stderr
  assert not workdir.exists()


def test_gin_file_imports_are_refused_outside_the_project(tiny_idx_dir, tmp_path):
  evil = tmp_path / "evil.gin"
  evil.write_text("import os\nrun.seed = 1\n")
  with pytest.raises(train.ConfigError, match="allow_gin_imports"):
    train.run([GIN, str(evil)], tiny(tiny_idx_dir, 2, 1), str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tiny_idx_dir,
                                                                          tmp_path):
  workdir = tmp_path / "run"
  bindings = tiny(tiny_idx_dir, 20, 10, **{"train.learning_rate": 1e12,
                                           "train.estimator": "'nwj'"})
  with pytest.raises(train.NonFiniteLossError, match="at step "):
    _run(workdir, bindings)
  assert steps(_results(workdir)) == [0]
  assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-0")
  assert not (workdir / "embeddings.npz").exists()
