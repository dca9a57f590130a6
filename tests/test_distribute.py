"""Training under tf.distribute: MirroredStrategy on two CPU devices and a two-process
MultiWorkerMirroredStrategy cluster on loopback give the single-device run's numbers."""

import json
import os
import socket
import subprocess
import sys

import pytest

from mi_repr_tf import rundir
from test_train import GIN, gin_args, tiny
from mi_repr_tf import train


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def single_device(tiny_idx_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("single") / "run"
  return train.run([GIN], tiny(tiny_idx_dir), str(workdir))[1]


def _close(a, b):
  assert [r["step"] for r in a] == [r["step"] for r in b]
  for x, y in zip(a, b):
    assert x["test_bound"] == pytest.approx(y["test_bound"], abs=2e-3), x["step"]
    assert x["train_loss"] == pytest.approx(y["train_loss"], abs=2e-3), x["step"]
    assert abs(x["accuracy"] - y["accuracy"]) <= 0.02


def test_mirrored_on_two_cpus_matches_one_device(tiny_idx_dir, tmp_path, single_device):
  workdir = tmp_path / "run"
  bindings = tiny(tiny_idx_dir, **{"distribute.strategy": "'mirrored'",
                                   "distribute.cpu_devices": 2})
  _close(train.run([GIN], bindings, str(workdir))[1], single_device)  # in process: the CPU
  # is already split into two logical devices (tests/conftest.py)


@pytest.mark.slow  # two processes each importing TensorFlow: python -m pytest -m slow
def test_two_worker_processes_on_loopback_match_one_device(tiny_idx_dir, tmp_path,
                                                          single_device):
  workdir = tmp_path / "run"
  workers = [f"localhost:{_free_port()}" for _ in range(2)]
  args = [sys.executable, "-m", "mi_repr_tf.train", *gin_args(
      tiny(tiny_idx_dir, **{"distribute.strategy": "'multi_worker'"})), f"--workdir={workdir}"]
  procs = []
  for index in range(2):
    tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_CONFIG=json.dumps(tf_config))
    procs.append(subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                  stderr=open(tmp_path / f"worker{index}.log", "w")))
  try:
    codes = [p.wait(timeout=300) for p in procs]
  finally:
    for p in procs:
      p.kill()
  logs = [(tmp_path / f"worker{i}.log").read_text()[-2000:] for i in range(2)]
  assert codes == [0, 0], logs
  _close(rundir.read_results(str(workdir)).records, single_device)  # the chief's record
  assert (workdir / "embeddings.npz").exists()
  assert not (workdir / ".worker-1" / "results.jsonl").exists()  # other workers record nothing
