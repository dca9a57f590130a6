"""Sweeps: building blocks, the named studies, run status, and the launcher end to end
(parallel workers, a failed run, a run killed with SIGKILL and resumed, Ray)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from mi_repr_tf import rundir
from mi_repr_tf import studies as sweep_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # launch/ is a folder of the repository, not of the package

from launch import execute as execute_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from launch import sweep as launcher  # pylint: disable=g-import-not-at-top,wrong-import-position


# --------------------------------------------------------------------------- building blocks

def test_sweep_product_zipit_chainit_known_answers():
  a = sweep_lib.sweep("a", [1, 2])
  b = sweep_lib.sweep("b", ["x", "y", "z"])
  assert a == [{"a": 1}, {"a": 2}]
  assert sweep_lib.product([a, b]) == [
      {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"},
      {"a": 2, "b": "x"}, {"a": 2, "b": "y"}, {"a": 2, "b": "z"}]
  assert sweep_lib.zipit([b, sweep_lib.sweep("c", [7, 8, 9])]) == [
      {"b": "x", "c": 7}, {"b": "y", "c": 8}, {"b": "z", "c": 9}]
  assert sweep_lib.chainit([a, sweep_lib.fixed("a", 5)]) == [{"a": 1}, {"a": 2}, {"a": 5}]
  with pytest.raises(ValueError, match="equal length"):
    sweep_lib.zipit([a, b])
  with pytest.raises(ValueError, match="set twice"):
    sweep_lib.product([a, sweep_lib.fixed("a", 3)])


def test_critic_study_has_the_papers_runs_with_readable_names():
  runs = sweep_lib.study("critic_study")  # 20 seeds by default, as in the paper
  assert len(runs) == 3 * 2 * 20
  assert len({r.name for r in runs}) == len(runs)
  by_name = {r.name: r for r in runs}
  run = by_name["critic_separable-nwj-seed3"]
  assert run.gin_files == ("gin/critic_separable.gin",)
  assert run.bindings == ("train.estimator='nwj'", "run.seed=3")
  assert runs[0].name == "critic_bilinear-nce-seed0"  # indexable by run number
  assert {r.name.split("-")[0] for r in runs} == {
      "critic_bilinear", "critic_separable", "critic_mlp"}


def test_names_do_not_depend_on_the_number_of_seeds_and_extra_bindings_come_last():
  few = sweep_lib.study("critic_study", 3, ["run.num_steps=50"])
  many = sweep_lib.study("critic_study", 20)
  assert {r.name for r in few} <= {r.name for r in many}
  assert all(r.bindings[-1] == "run.num_steps=50" for r in few)
  target = {r.name: r for r in sweep_lib.study("target_study", 2)}
  assert target["target_convnet-t4-nwj-seed1"].bindings == (
      "train.target=4.0", "train.estimator='nwj'", "run.seed=1")


def test_every_study_expands_and_bad_names_are_clear_errors():
  for name in sweep_lib.STUDIES:
    runs = sweep_lib.study(name, 2)
    assert runs and all(r.name.endswith(("seed0", "seed1")) for r in runs)
  with pytest.raises(sweep_lib.ConfigError, match="critic_study"):
    sweep_lib.study("no_such_study")
  with pytest.raises(sweep_lib.ConfigError, match="gin/nope.gin"):
    sweep_lib.check_gin_files([sweep_lib.Run("r", ("gin/nope.gin",), ())], REPO)


def test_train_command_of_a_run():
  run = sweep_lib.study("critic_study", 1, ["run.num_steps=10"])[0]
  args = run.train_args("/tmp/w", REPO)
  assert args == [f"--gin_file={REPO}/gin/critic_bilinear.gin",
                  "--gin_param=train.estimator='nce'", "--gin_param=run.seed=0",
                  "--gin_param=run.num_steps=10", "--workdir=/tmp/w"]


# --------------------------------------------------------------------------- run status

def _fake_run(workdir, num_steps, steps, embeddings):
  os.makedirs(workdir)
  with open(os.path.join(workdir, rundir.CONFIG), "w") as f:
    f.write(f"# Parameters for train:\nrun.num_steps = {num_steps}\nrun.seed = 0\n")
  for step in steps:
    rundir.append_result(workdir, {"step": step, "accuracy": 0.5})
  if embeddings:
    with open(os.path.join(workdir, rundir.EMBEDDINGS), "wb") as f:
      f.write(b"")


def test_run_status(tmp_path):
  assert rundir.run_status(str(tmp_path / "absent")) == rundir.NEW
  _fake_run(str(tmp_path / "done"), 20, [0, 10, 20], embeddings=True)
  _fake_run(str(tmp_path / "no_emb"), 20, [0, 10, 20], embeddings=False)
  _fake_run(str(tmp_path / "half"), 20, [0, 10], embeddings=False)
  assert rundir.run_status(str(tmp_path / "done")) == rundir.FINISHED
  assert rundir.run_status(str(tmp_path / "no_emb")) == rundir.FINISHED  # e.g. Gaussian runs
  rundir.write_pending(str(tmp_path / "no_emb"), 20, {"step": 20}, {}, {})
  assert rundir.run_status(str(tmp_path / "no_emb")) == rundir.INTERRUPTED  # a probe pending
  assert rundir.run_status(str(tmp_path / "half")) == rundir.INTERRUPTED
  assert rundir.resume_point(str(tmp_path / "half")) == "last evaluation at step 10"
  torn = tmp_path / "half" / rundir.RESULTS
  before = torn.read_text() + '{"step": 20, "acc'
  torn.write_text(before)
  assert rundir.read_results(str(tmp_path / "half")).steps == [0, 10]
  assert torn.read_text() == before  # status never modifies a run that may be going on


# --------------------------------------------------------------------------- the launcher

def sweep_cli(args, timeout=600):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", "launch.sweep", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)


def tiny_params(data_dir, num_steps=20, eval_every=10):
  bindings = {"dataset.name": "'mnist'", "dataset.data_dir": repr(data_dir),
              "run.num_steps": num_steps, "run.eval_every": eval_every,
              "train.batch_size": 16, "run.steps_per_loop": 5, "mlp.hidden_units": [32],
              "run.jit_compile": False}
  return [f"--gin_param={k}={v}" for k, v in bindings.items()]


def test_print_only_lists_runs_and_writes_nothing(tmp_path):
  folder = tmp_path / "sweep"
  result = sweep_cli(["--sweep=critic_study", f"--runs={folder}", "--seeds=2", "--print_only",
                      "--gin_param=run.num_steps=7"])
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert lines[0] == "[0] critic_bilinear-nce-seed0 (new)"
  assert sum(line.startswith("[") for line in lines) == 12
  assert (f"--workdir={folder}/critic_mlp-nwj-seed1" in result.stdout
          and "--gin_param=run.num_steps=7" in result.stdout)
  assert lines[-1] == f"12 runs in {folder}: 0 finished, 0 interrupted, 12 new"
  assert not folder.exists()


def test_a_folder_holding_another_sweep_is_refused(tmp_path):
  launcher.update_manifest(str(tmp_path), "critic_study", ["run.num_steps=5"], [])
  result = sweep_cli(["--sweep=critic_study", f"--runs={tmp_path}", "--seeds=1",
                      "--gin_param=run.num_steps=6"])
  assert result.returncode == 2
  assert result.stderr.startswith("error:") and "run.num_steps=5" in result.stderr
  result = sweep_cli(["--sweep=critic_study", f"--runs={tmp_path}", "--only=nothing_matches"])
  assert result.returncode == 2 and "nothing_matches" in result.stderr


def test_gpu_workers_each_own_one_gpu(monkeypatch, tmp_path, capsys):
  """Local workers with --gpus=0,1: every run sees exactly one GPU and no two runs that
  overlap in time share one."""
  active, seen, lock = {}, [], threading.Lock()

  def fake_execute(args, log_path, env, on_start=None):
    del args, log_path, on_start
    gpu = env["CUDA_VISIBLE_DEVICES"]
    with lock:
      assert gpu not in active.values(), "two concurrent runs on one GPU"
      active[threading.get_ident()] = gpu
      seen.append(gpu)
    time.sleep(0.05)
    with lock:
      del active[threading.get_ident()]
    return 0, 0.05, ""

  monkeypatch.setattr(execute_lib, "execute", fake_execute)
  runs = sweep_lib.study("critic_study", 2)
  planned = launcher.plan(runs, str(tmp_path))
  failed = launcher.run_local(planned, str(tmp_path), launcher.Console(len(runs)), workers=2,
                              gpus=["0", "1"], threads=0)
  assert failed == [] and len(seen) == 12 and set(seen) == {"0", "1"}
  assert "[gpu 0]" in capsys.readouterr().out
  assert launcher.parse_gpus("0, 1") == ["0", "1"]
  env = execute_lib.run_env("1", threads=1, sharing_gpu=True)
  assert (env["CUDA_VISIBLE_DEVICES"], env["TF_FORCE_GPU_ALLOW_GROWTH"]) == ("1", "true")
  assert env["TF_NUM_INTRAOP_THREADS"] == env["OMP_NUM_THREADS"] == "1"
  assert "TF_NUM_INTRAOP_THREADS" not in execute_lib.run_env(None, 0, False) or (
      os.environ.get("TF_NUM_INTRAOP_THREADS"))
  with pytest.raises(sweep_lib.ConfigError):
    launcher.parse_gpus("zero")


def test_gpus_all_counts_the_gpus_nvidia_smi_lists(tmp_path, monkeypatch):
  fake = tmp_path / "nvidia-smi"
  fake.write_text("#!/bin/sh\necho 'GPU 0: H100 (UUID: a)'\necho 'GPU 1: H100 (UUID: b)'\n"
                  "echo 'GPU 2: H100 (UUID: c)'\n")
  fake.chmod(0o755)
  monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
  assert launcher.parse_gpus("all") == ["0", "1", "2"]


def _pid_of_run(workdir):
  """The process id of the train command running in `workdir` (started by the sweep)."""
  for pid in os.listdir("/proc"):
    if not pid.isdigit():
      continue
    try:
      with open(f"/proc/{pid}/cmdline", "rb") as f:
        args = f.read().decode(errors="replace").split("\0")
    except OSError:
      continue
    if "mi_repr_tf.train" in args and f"--workdir={workdir}" in args:
      return int(pid)
  return None


def _steps(workdir):
  return rundir.read_results(str(workdir)).steps


@pytest.mark.slow  # a sweep of five command-line runs: python -m pytest -m slow
def test_sweep_runs_in_parallel_reports_failures_and_resumes_a_killed_run(tiny_idx_dir,
                                                                          tmp_path):
  """Three runs with two workers: one is killed with SIGKILL mid-way, one fails on its
  config; the others finish. Re-running the sweep resumes the killed run, skips the finished
  one and reports the failed one again, with its log."""
  folder = tmp_path / "sweep"
  args = ["--sweep=critic_study", f"--runs={folder}", "--seeds=1", "--workers=2",
          "--only=critic_bilinear|critic_separable-nce",
          *tiny_params(tiny_idx_dir, num_steps=120, eval_every=20)]
  victim = folder / "critic_bilinear-nce-seed0"
  other = folder / "critic_bilinear-nwj-seed0"
  refused = folder / "critic_separable-nce-seed0"
  refused.mkdir(parents=True)
  (refused / rundir.CONFIG).write_text("run.seed = 99\n")  # another run's workdir

  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.Popen([sys.executable, "-m", "launch.sweep", *args], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  killed_at = None
  deadline = time.time() + 300
  while time.time() < deadline and proc.poll() is None:
    results = victim / rundir.RESULTS
    if results.exists() and len(results.read_text().splitlines()) >= 2:
      pid = _pid_of_run(str(victim))
      if pid:
        os.kill(pid, signal.SIGKILL)
        killed_at = len(rundir.read_results(str(victim)).records)
        break
    time.sleep(0.01)
  out, _ = proc.communicate(timeout=300)
  assert killed_at is not None and 2 <= killed_at < 7, out
  assert proc.returncode == 1, out
  assert "FAILED critic_bilinear-nce-seed0 (killed by SIGKILL)" in out
  assert f"log: {folder}/logs/critic_bilinear-nce-seed0.log" in out
  assert "FAILED critic_separable-nce-seed0 (exit 2)" in out
  assert "different configuration" in out  # the run's own error line, from its log
  assert "done   critic_bilinear-nwj-seed0" in out  # the others went on
  assert rundir.run_status(str(other)) == rundir.FINISHED
  assert rundir.run_status(str(victim)) == rundir.INTERRUPTED
  other_results = (other / rundir.RESULTS).read_bytes()
  other_mtime = os.path.getmtime(other / rundir.EMBEDDINGS)
  assert json.load(open(folder / "sweep.json"))["sweep"] == "critic_study"

  again = sweep_cli(args)
  assert again.returncode == 1, again.stdout + again.stderr
  assert "1 already finished, 2 to run" in again.stdout
  assert f"start  critic_bilinear-nce-seed0: resuming (last evaluation at step " in again.stdout
  assert "critic_bilinear-nwj-seed0" not in again.stdout  # finished: not started again
  assert "FAILED critic_separable-nce-seed0 (exit 2)" in again.stdout
  # Exactly the missing work: every evaluation once, the finished run untouched.
  assert _steps(victim) == [0, 20, 40, 60, 80, 100, 120]
  assert rundir.run_status(str(victim)) == rundir.FINISHED
  log = (folder / "logs" / "critic_bilinear-nce-seed0.log").read_text()
  assert log.count("=== ") == 2 and "Resumed" in log
  assert (other / rundir.RESULTS).read_bytes() == other_results
  assert os.path.getmtime(other / rundir.EMBEDDINGS) == other_mtime


@pytest.mark.slow
def test_sweep_on_a_local_ray_instance(tiny_idx_dir, tmp_path):
  pytest.importorskip("ray")
  folder = tmp_path / "ray_sweep"
  args = ["--sweep=critic_study", f"--runs={folder}", "--seeds=1", "--only=critic_bilinear",
          "--ray_address=local", "--workers=2", *tiny_params(tiny_idx_dir)]
  result = sweep_cli(args)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  assert "Ray: 2 CPUs" in result.stdout
  for name in ("critic_bilinear-nce-seed0", "critic_bilinear-nwj-seed0"):
    assert f"done   {name}" in result.stdout and "[ray]" in result.stdout
    assert rundir.run_status(str(folder / name)) == rundir.FINISHED
    assert _steps(folder / name) == [0, 10, 20]
    emb = rundir.read_embeddings(str(folder / name))
    assert np.all(np.isfinite(emb["test_embeddings"]))
  again = sweep_cli(args)  # resumable on Ray too: nothing left to do
  assert again.returncode == 0 and "2 already finished, 0 to run" in again.stdout


def test_a_run_dies_with_its_sweep(tmp_path):
  """A sweep killed with SIGKILL cannot stop its runs itself: each run is started so that
  the kernel sends it SIGTERM when the sweep dies (no orphan left training)."""
  script = tmp_path / "parent.py"
  script.write_text(
      "import subprocess, sys, time\n"
      f"sys.path.insert(0, {REPO!r})\n"
      "from launch import execute\n"
      "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],\n"
      "                         preexec_fn=execute._die_with_parent)\n"
      "print(child.pid, flush=True)\n"
      "time.sleep(60)\n")
  parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
  child = int(parent.stdout.readline())
  parent.send_signal(signal.SIGKILL)
  parent.wait()
  deadline = time.time() + 10
  while time.time() < deadline:
    try:
      with open(f"/proc/{child}/stat") as f:
        if f.read().split(") ")[1].startswith("Z"):
          break  # ended (a zombie until PID 1 reaps it)
    except FileNotFoundError:
      break
    time.sleep(0.05)
  else:
    os.kill(child, signal.SIGKILL)
    pytest.fail("the run outlived its sweep")


def test_estimators_flag_sweeps_registered_estimators():
  runs = sweep_lib.study("critic_study", 1, estimators=["nce", "nwj", "dv"])
  assert {r.name.split("-")[1] for r in runs} == {"nce", "nwj", "dv"}
  with pytest.raises(sweep_lib.ConfigError, match="--estimators='nope'"):
    sweep_lib.study("critic_study", 1, estimators=["nope"])
  with pytest.raises(sweep_lib.ConfigError, match="does not sweep estimators"):
    sweep_lib.study("adversarial", 1, estimators=["nce"])
