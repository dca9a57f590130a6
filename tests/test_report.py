"""The report: runs read from their directories, mean and std over seeds, figures chosen by
the runs' bindings, the CSV, the table with the paper's numbers, unfinished and missing runs.

The runs here are written by the test with known numbers (no training), so every aggregate
has a known answer."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mi_repr_tf import hparams as hparams_lib
from mi_repr_tf import report as report_lib
from mi_repr_tf import rundir


def write_run(root, name, bindings, records, baseline=0.75, finished=True):
  """A run directory as the train command leaves it (without checkpoints)."""
  workdir = os.path.join(root, name)
  os.makedirs(workdir)
  lines = ["# Parameters for train:", "# " + "=" * 30]
  lines += [f"{k} = {v!r}" for k, v in bindings.items()]
  with open(os.path.join(workdir, rundir.CONFIG), "w") as f:
    f.write("\n".join(lines) + "\n")
  for record in records:
    rundir.append_result(workdir, record)
  rundir.write_json(workdir, rundir.BASELINE, {"pixel_accuracy": baseline})
  if finished:
    rundir.write_embeddings(workdir, {"test_embeddings": np.zeros((2, 2), np.float32)})
  return workdir


def e4(critic, estimator, seed, num_steps=20, **extra):
  return {"experiment.name": "two_view", "dataset.name": "fashion_mnist",
          "dataset.data_dir": "/data", "train.encoder": "mlp", "train.critic": critic,
          "train.estimator": estimator, "train.target": None, "train.seed": seed,
          "train.num_steps": num_steps, **extra}


def records(accuracies, bounds, steps=(0, 10, 20)):
  return [{"step": s, "accuracy": a, "test_bound": b, "train_loss": -b,
           "eval_seconds": {"probe": 0.1}} for s, a, b in zip(steps, accuracies, bounds)]


@pytest.fixture
def sweep_dir(tmp_path):
  root = str(tmp_path / "runs")
  os.makedirs(root)
  # E4: bilinear with NCE and NWJ over two seeds, concat with one seed each.
  write_run(root, "critic_bilinear-nce-seed0", e4("bilinear", "nce", 0),
            records([0.5, 0.6, 0.7], [0.0, 1.0, 2.0]))
  write_run(root, "critic_bilinear-nce-seed1", e4("bilinear", "nce", 1),
            records([0.6, 0.8, 0.9], [0.2, 1.2, 3.0]), baseline=0.77)
  write_run(root, "critic_bilinear-nwj-seed0", e4("bilinear", "nwj", 0),
            records([0.5, 0.55, 0.6], [0.0, 0.5, 0.8]))
  write_run(root, "critic_mlp-nce-seed0", e4("concat", "nce", 0, **{"concat.hidden_units": [200]}),
            records([0.5, 0.5, 0.52], [0.0, 2.0, 4.0]))
  # Killed mid-way: two evaluations, no embeddings.
  write_run(root, "critic_mlp-nwj-seed0", e4("concat", "nwj", 0, **{"concat.hidden_units": [200]}),
            records([0.5, 0.51], [0.0, 3.0], steps=(0, 10)), finished=False)
  # E5: an MLP encoder trained to t = 2, with |I - t| logged.
  e5 = e4("bilinear", "nce", 0, **{"train.target": 2.0})
  write_run(root, "target_mlp-t2-nce-seed0", e5,
            [dict(r, test_target_gap=abs(r["test_bound"] - 2.0))
             for r in records([0.5, 0.6, 0.65], [0.0, 1.5, 1.9])])
  # E3: skip MLP with the Jacobian's log condition percentiles 0, 20, ..., 100 as a list.
  e3 = e4("bilinear", "nce", 0, **{"train.encoder": "mlp_skip", "dataset.noise_std": 0.05})
  write_run(root, "noninvertible-nce-seed0", e3,
            [dict(r, jacobian_log_condition_percentiles=[s / 10 + q for q in range(6)])
             for s, r in zip((0, 10, 20), records([0.8, 0.82, 0.84], [0.0, 1.0, 1.5]))])
  # E6: synthetic Gaussian, estimates next to the true MI.
  e6 = {"experiment.name": "gaussian", "gaussian.estimator": "nce", "gaussian.iid": False,
        "gaussian.seed": 0, "gaussian.num_steps": 20}
  write_run(root, "noniid_gaussian-nce-seed0", e6,
            [{"step": s, "estimate": e, "true_mi": 0.0204} for s, e in
             zip((0, 10, 20), (0.0, 0.05, 0.06))])
  # A sweep manifest that also plans a run that never started.
  with open(os.path.join(root, "sweep.json"), "w") as f:
    json.dump({"sweep": "critic_study", "gin_params": [],
               "runs": {n: {} for n in ("critic_bilinear-nce-seed0", "critic_mlp-nwj-seed0",
                                        "critic_separable-nce-seed0")}}, f)
  return root


def test_parse_operative_config():
  text = ("# Parameters for train:\n# ====\ntrain.critic = 'bilinear'\ntrain.target = None\n"
          "mlp.hidden_units = (300, 300)\nconcat.hidden_units = [\n    200,\n    10]\n"
          "train.learning_rate = 0.0001\nexperiment.fn = @train\nscope/x.y = 'a = b'\n")
  assert hparams_lib.parse_operative_config(text) == {
      "train.critic": "bilinear", "train.target": None, "mlp.hidden_units": (300, 300),
      "concat.hidden_units": [200, 10], "train.learning_rate": 1e-4,
      "experiment.fn": "@train", "scope/x.y": "a = b"}
  hp = hparams_lib.hparams_from_config(hparams_lib.parse_operative_config(
      text + "dataset.data_dir = '/x'\ntrain.jit_compile = True\n"))
  assert hp["train.target"] == "None" and hp["mlp.hidden_units"] == "(300, 300)"
  assert "dataset.data_dir" not in hp and "train.jit_compile" not in hp


def test_experiment_of_bindings():
  assert report_lib.experiment_of(e4("bilinear", "nce", 0)) == "E4"
  assert report_lib.experiment_of(e4("bilinear", "nce", 0, **{"train.target": 4.0})) == "E5"
  assert report_lib.experiment_of(
      e4("concat", "nce", 0, **{"dataset.name": "cifar10"})) == "E7"
  assert report_lib.experiment_of(e4("bilinear", "nce", 0, **{"train.encoder": "realnvp"})) == "E1"
  assert report_lib.experiment_of({"experiment.name": "adversarial"}) == "E2"


def test_report_aggregates_over_seeds_with_known_answers(sweep_dir, tmp_path):
  out = str(tmp_path / "out")
  result = report_lib.report(sweep_dir, out)
  figures = {os.path.basename(p): drawn for p, drawn in result["figures"].items()}
  assert sorted(figures) == ["figure2.png", "figure3.png", "figure4ab.png", "figure4c.png",
                             "figure5.png", "figure6.png", "figure7.png"]
  for name in figures:
    assert os.path.getsize(os.path.join(out, name)) > 10_000

  # Figure 3: accuracy per critic, mean and sample std over seeds at every step.
  nce = report_lib.NCE
  panel = figures["figure3.png"][nce]
  assert list(panel) == ["bilinear", "MLP"]
  np.testing.assert_allclose(panel["bilinear"]["mean"], [0.55, 0.7, 0.8])
  np.testing.assert_allclose(panel["bilinear"]["std"], [np.std([0.5, 0.6], ddof=1),
                                                        np.std([0.6, 0.8], ddof=1),
                                                        np.std([0.7, 0.9], ddof=1)])
  assert panel["bilinear"]["n"] == [2, 2, 2] and panel["bilinear"]["steps"] == [0, 10, 20]
  # The unfinished NWJ run is drawn with the evaluations it has.
  nwj_bound = figures["figure3.png"][report_lib.NWJ]
  assert nwj_bound["MLP"]["steps"] == [0, 10]
  np.testing.assert_allclose(figures["figure6.png"][nce]["MLP"]["mean"], [0.0, 2.0, 4.0])
  # Figure 7: the logged |I - t|; Figure 2/5: one line per percentile.
  np.testing.assert_allclose(figures["figure7.png"][nce]["Test loss $|I_{\\mathrm{EST}} - t|$"]
                             ["mean"], [2.0, 0.5, 0.1], atol=1e-12)
  cond = figures["figure2.png"][f"{nce}: log condition number of the Jacobian"]
  assert list(cond) == [f"{p}th percentile" for p in (0, 20, 40, 60, 80, 100)]
  np.testing.assert_allclose(cond["100th percentile"]["mean"], [5.0, 6.0, 7.0])
  gaussian = figures["figure4c.png"]["Estimates"]
  np.testing.assert_allclose(list(gaussian.values())[0]["mean"], [0.0, 0.05, 0.06])

  # The table: one row per configuration, final values over finished runs only.
  rows = {(r["experiment"], r["configuration"]): r for r in result["rows"]}
  assert sorted(rows)[:3] == [
      ("E3", "encoder=mlp_skip, critic=bilinear, estimator=nce, target=None"),
      ("E4", "critic=bilinear, estimator=nce"), ("E4", "critic=bilinear, estimator=nwj")]
  bilinear = rows["E4", "critic=bilinear, estimator=nce"]
  assert bilinear["seeds"] == "2/2" and bilinear["step"] == "20"
  assert bilinear["accuracy"] == f"80.00 ± {100 * np.std([0.7, 0.9], ddof=1):.2f}"
  assert bilinear["test_bound"] == f"2.500 ± {np.std([2.0, 3.0], ddof=1):.3f}"
  assert bilinear["pixels"] == f"76.00 ± {100 * np.std([0.75, 0.77], ddof=1):.2f}"
  assert "clearly above pixels" in bilinear["paper_accuracy"]
  concat_nwj = rows["E4", "critic=concat (MLP), estimator=nwj"]
  assert concat_nwj["seeds"] == "0/1" and concat_nwj["accuracy"] == "—"
  assert "highest I_NWJ" in concat_nwj["paper_bound"]
  assert rows["E6", "estimator=nce, iid=False"]["test_bound"] == "0.060 ± 0.000"

  # Unfinished and missing runs are listed, with where to look.
  assert result["unfinished"] == [
      "- critic_mlp-nwj-seed0: interrupted, last evaluation at step 10 "
      f"(log: {sweep_dir}/logs/critic_mlp-nwj-seed0.log)"]
  assert result["missing"] == [
      f"- critic_separable-nce-seed0: no run directory (log: {sweep_dir}/logs/"
      "critic_separable-nce-seed0.log)"]
  table = open(os.path.join(out, "table.md")).read()
  assert "critic_separable-nce-seed0" in table and "critic_mlp-nwj-seed0" in table
  assert table.count("\n| ") == len(result["rows"]) + 1

  # The CSV: one row per evaluation, with the run's bindings beside its numbers.
  with open(os.path.join(out, "evaluations.csv")) as f:
    rows_csv = list(csv.DictReader(f))
  assert len(rows_csv) == 7 * 3 + 2  # seven runs with 3 evaluations, the killed one with 2
  row = next(r for r in rows_csv if r["run"] == "critic_bilinear-nce-seed1" and r["step"] == "20")
  assert (row["train.critic"], row["accuracy"], row["pixel_accuracy"]) == ("bilinear", "0.9",
                                                                           "0.77")
  assert row["eval_seconds.probe"] == "0.1" and row["status"] == "finished"


def test_report_command_line(sweep_dir, tmp_path):
  out = tmp_path / "out"
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  result = subprocess.run([sys.executable, "-m", "mi_repr_tf.report", f"--runs={sweep_dir}",
                           f"--out={out}"], capture_output=True, text=True, env=env, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "| configuration |" in result.stdout and "wrote 7 figure(s)" in result.stdout
  assert (out / "figure3.png").exists() and (out / "evaluations.csv").exists()
  bad = subprocess.run([sys.executable, "-m", "mi_repr_tf.report", "--runs=/no/such/dir",
                        f"--out={out}"], capture_output=True, text=True, env=env, timeout=300)
  assert bad.returncode == 2 and bad.stderr.startswith("error:")
