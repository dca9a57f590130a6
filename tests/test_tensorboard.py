"""TensorBoard across a sweep: the real server, on a free localhost port, pointed at a folder of
two finished runs, serves each run's scalars (equal to its results.jsonl) and the runs'
hparams (encoder, critic, estimator, seed, ...) through its HTTP API."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest

from mi_repr_tf import rundir
from mi_repr_tf import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIN = os.path.join(REPO, "gin", "critic_bilinear.gin")
RUNS = ("critic_bilinear-nce-seed0", "critic_bilinear-nce-seed1")


def tiny(data_dir, seed):
  return [f"dataset.name='mnist'", f"dataset.data_dir={data_dir!r}", "run.num_steps=20",
          "run.eval_every=10", "train.batch_size=16",
          "run.steps_per_loop=5", f"run.seed={seed}", "mlp.hidden_units=[32]",
          "run.jit_compile=False"]


@pytest.fixture(scope="module")
def sweep_folder(tiny_idx_dir, tmp_path_factory):
  folder = tmp_path_factory.mktemp("sweep")
  for seed, name in enumerate(RUNS):
    train.run([GIN], tiny(tiny_idx_dir, seed), str(folder / name))
  return folder


def free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def get(url, body=None):
  data = json.dumps(body).encode() if body is not None else None
  request = urllib.request.Request(url, data=data,
                                    headers={"Content-Type": "application/json"})
  with urllib.request.urlopen(request, timeout=10) as response:
    return json.load(response)


@pytest.fixture
def tensorboard(sweep_folder):
  """The real TensorBoard server on a free localhost port; stopped whatever happens."""
  port = free_port()
  proc = subprocess.Popen(
      [sys.executable, "-m", "tensorboard.main", f"--logdir={sweep_folder}",
       "--host=127.0.0.1", f"--port={port}"],
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  base = f"http://127.0.0.1:{port}"
  try:
    deadline = time.time() + 120
    runs = []
    while time.time() < deadline and proc.poll() is None and len(runs) < len(RUNS):
      try:
        runs = get(f"{base}/data/runs")
      except (urllib.error.URLError, ConnectionError, TimeoutError):
        pass
      time.sleep(0.5)
    assert proc.poll() is None, proc.stdout.read()[-3000:]
    assert len(runs) == len(RUNS), f"TensorBoard listed {runs} within 120 s"
    yield base
  finally:
    proc.terminate()
    try:
      proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
      proc.kill()
      proc.wait(timeout=20)


@pytest.mark.slow  # trains two runs, then starts the TensorBoard server: about 20 s
def test_tensorboard_serves_the_runs_scalars_and_hparams(sweep_folder, tensorboard):
  runs = get(f"{tensorboard}/data/runs")
  assert sorted(runs) == [f"{name}/tensorboard" for name in RUNS]  # side by side
  tags = get(f"{tensorboard}/data/plugin/scalars/tags")
  for name in RUNS:
    assert {"train_loss", "test_bound", "accuracy"} <= set(tags[f"{name}/tensorboard"])
    records = rundir.read_results(str(sweep_folder / name)).records
    for tag in ("test_bound", "accuracy", "train_loss"):
      query = urllib.parse.urlencode({"run": f"{name}/tensorboard", "tag": tag})
      points = get(f"{tensorboard}/data/plugin/scalars/scalars?{query}")
      assert [step for _, step, _ in points] == [0, 10, 20]
      np.testing.assert_allclose([value for _, _, value in points],
                                 [r[tag] for r in records], rtol=1e-6)

  experiment = get(f"{tensorboard}/data/plugin/hparams/experiment", {"experimentName": ""})
  infos = {info["name"]: info for info in experiment["hparamInfos"]}
  for key in ("train.encoder", "train.critic", "train.estimator", "run.seed",
              "train.learning_rate", "dataset.name"):
    assert key in infos, sorted(infos)
  assert infos["train.critic"]["domainDiscrete"] == ["bilinear"]
  assert infos["run.seed"]["domainInterval"] == {"minValue": 0.0, "maxValue": 1.0}
  assert infos["run.seed"]["differs"] and not infos["train.critic"]["differs"]
  assert "dataset.data_dir" not in infos  # where the data lives is not a hyperparameter
  metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
  assert {"accuracy", "test_bound"} <= metrics

  groups = get(f"{tensorboard}/data/plugin/hparams/session_groups", {
      "experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS",
                                                "STATUS_FAILURE", "STATUS_RUNNING"],
      "colParams": [{"hparam": "run.seed"}], "startIndex": 0, "sliceSize": 10})
  seeds = sorted(g["hparams"]["run.seed"] for g in groups["sessionGroups"])
  assert seeds == [0, 1]
