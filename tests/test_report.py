"""The report: runs read through `rundir`, mean and std over seeds, figures chosen by each
run's run.experiment_id, the CSV, the table with the paper's numbers, unfinished, missing and
skipped runs. The run directories are written by hand with known numbers (no training)."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mi_repr_tf import rundir
from mi_repr_tf.report import __main__ as cli
from mi_repr_tf.report import experiments as exp_lib
from mi_repr_tf.report import figures as figures_lib
from mi_repr_tf.report import load
from mi_repr_tf import report as report_lib

NCE, NWJ = exp_lib.I_NCE, exp_lib.I_NWJ


def write_run(root, name, bindings, records, baseline=0.75, dataset=None):
  """A run directory as the run controller leaves it (without checkpoints)."""
  workdir = os.path.join(root, name)
  os.makedirs(workdir)
  lines = ["# Parameters for run:", "# " + "=" * 30]
  lines += [f"{k} = {v!r}" for k, v in bindings.items()]
  with open(os.path.join(workdir, rundir.CONFIG), "w") as f:
    f.write("\n".join(lines) + "\n")
  for record in records:
    rundir.append_result(workdir, record)
  if baseline is not None:
    rundir.write_json(workdir, rundir.BASELINE, {"pixel_accuracy": baseline})
  if dataset is not None:
    rundir.write_json(workdir, rundir.DATASET, {"name": dataset, "source": "test",
                                                "requested": bindings.get("dataset.name")})
  return workdir


def two_view(experiment_id, critic, estimator, seed, **extra):
  return {"run.experiment_id": experiment_id, "run.experiment": "two_view", "run.seed": seed,
          "run.num_steps": 20, "dataset.name": "fashion_mnist", "dataset.data_dir": "/data",
          "train.encoder": "mlp", "train.critic": critic, "train.estimator": estimator,
          "train.target": None, **extra}


def records(accuracies, bounds, steps=(0, 10, 20), **extra):
  return [{"step": s, "accuracy": a, "test_bound": b, "train_loss": -b,
           "eval_seconds": {"probe": 0.1}, **extra}
          for s, a, b in zip(steps, accuracies, bounds)]


def run_report(root, tmp_path):
  result = report_lib.report(str(root), str(tmp_path / "out"))
  return result, {os.path.basename(p): d for p, d in result.figures.items()}


def panel(drawing, title):
  found = [p for p in drawing["panels"] if p["title"] == title]
  assert len(found) == 1, [p["title"] for p in drawing["panels"]]
  return found[0]


@pytest.fixture
def critic_study(tmp_path):
  """E4: bilinear NCE over two seeds, bilinear NWJ, concat NCE, a killed concat NWJ run,
  and a sweep manifest that plans one more run."""
  root = str(tmp_path / "runs")
  write_run(root, "bilinear-nce-seed0", two_view("E4", "bilinear", "nce", 0),
            records([0.5, 0.6, 0.7], [0.0, 1.0, 2.0]))
  write_run(root, "bilinear-nce-seed1", two_view("E4", "bilinear", "nce", 1),
            records([0.6, 0.8, 0.9], [0.2, 1.2, 3.0]), baseline=0.77)
  write_run(root, "bilinear-nwj-seed0", two_view("E4", "bilinear", "nwj", 0),
            records([0.5, 0.55, 0.6], [0.0, 0.5, 0.8]))
  concat = {"concat.hidden_units": [200]}
  write_run(root, "mlp-nce-seed0", two_view("E4", "concat", "nce", 0, **concat),
            records([0.5, 0.5, 0.52], [0.0, 2.0, 4.0]))
  write_run(root, "mlp-nwj-seed0", two_view("E4", "concat", "nwj", 0, **concat),
            records([0.5, 0.51], [0.0, 3.0], steps=(0, 10)))
  with open(os.path.join(root, "sweep.json"), "w") as f:
    json.dump({"runs": {n: {} for n in ("bilinear-nce-seed0", "mlp-nwj-seed0",
                                        "separable-nce-seed0")}}, f)
  return root


def test_known_answers_over_seeds(critic_study, tmp_path):
  result, figures = run_report(critic_study, tmp_path)
  assert sorted(figures) == ["figure3.png", "figure6.png"]
  assert os.path.getsize(tmp_path / "out" / "figure3.png") > 10_000
  accuracy = panel(figures["figure3.png"], NCE)["lines"]
  assert list(accuracy) == ["bilinear", "MLP"]
  np.testing.assert_allclose(accuracy["bilinear"]["mean"], [0.55, 0.7, 0.8])
  np.testing.assert_allclose(accuracy["bilinear"]["std"],
                             [np.std(p, ddof=1) for p in ([.5, .6], [.6, .8], [.7, .9])])
  assert accuracy["bilinear"]["n"] == [2, 2, 2] and accuracy["bilinear"]["steps"] == [0, 10, 20]
  # The killed run is drawn with the evaluations it has; Figure 3's bound is I_NWJ only.
  bound = panel(figures["figure3.png"], f"{NWJ}: test bound")["lines"]
  assert bound["MLP"]["steps"] == [0, 10]
  assert [p["title"] for p in figures["figure6.png"]["panels"]] == [NCE]
  np.testing.assert_allclose(panel(figures["figure6.png"], NCE)["lines"]["MLP"]["mean"],
                             [0.0, 2.0, 4.0])
  assert "fashion_mnist" in figures["figure3.png"]["caption"]
  assert "1/2 seed(s) per line" in figures["figure3.png"]["caption"]

  rows = {r["configuration"]: r for r in result.rows}
  assert list(rows) == ["critic=bilinear, estimator=nce", "critic=bilinear, estimator=nwj",
                        "critic=concat (MLP), estimator=nce",
                        "critic=concat (MLP), estimator=nwj"]
  bilinear = rows["critic=bilinear, estimator=nce"]
  assert (bilinear["experiment"], bilinear["seeds"], bilinear["step"]) == ("E4", "2/2", "20")
  assert bilinear["accuracy"] == f"80.00 ± {100 * np.std([0.7, 0.9], ddof=1):.2f}"
  assert bilinear["test_bound"] == f"2.500 ± {np.std([2.0, 3.0], ddof=1):.3f}"
  assert bilinear["pixels"] == f"76.00 ± {100 * np.std([0.75, 0.77], ddof=1):.2f}"
  assert "clearly above pixels" in bilinear["paper_accuracy"]
  assert bilinear["paper_bound"] == "close to log 128 = 4.85 for all critics"
  concat_nwj = rows["critic=concat (MLP), estimator=nwj"]
  assert concat_nwj["seeds"] == "0/1" and concat_nwj["accuracy"] == "—"
  assert "highest I_NWJ" in concat_nwj["paper_bound"]

  assert result.loaded.skipped == [] and result.loaded.warnings == []
  text = open(tmp_path / "out" / "table.md").read()
  assert (f"- mlp-nwj-seed0: interrupted, last evaluation at step 10 (log: {critic_study}/"
          "logs/mlp-nwj-seed0.log)") in text
  assert (f"- separable-nce-seed0: no run directory (log: {critic_study}/logs/"
          "separable-nce-seed0.log)") in text
  assert "notebook" not in text  # no run records the notebook's bound
  assert text.count("\n| ") == len(result.rows) + 1

  with open(tmp_path / "out" / "evaluations.csv") as f:
    rows_csv = list(csv.DictReader(f))
  assert len(rows_csv) == 4 * 3 + 2 == result.csv_rows
  row = next(r for r in rows_csv if r["run"] == "bilinear-nce-seed1" and r["step"] == "20")
  assert (row["experiment"], row["train.critic"], row["accuracy"], row["pixel_accuracy"],
          row["eval_seconds.probe"], row["status"]) == ("E4", "bilinear", "0.9", "0.77",
                                                        "0.1", "finished")


def test_new_estimator_and_critic_need_no_edit(tmp_path):
  root = tmp_path / "runs"
  write_run(root, "bilinear-nce", two_view("E4", "bilinear", "nce", 0),
            records([0.5, 0.6, 0.7], [0.0, 1.0, 2.0]))
  write_run(root, "toy-critic-nce", two_view("E4", "toy_critic", "nce", 0),
            records([0.5, 0.6, 0.8], [0.0, 1.0, 2.0]))
  write_run(root, "bilinear-toy-est", two_view("E4", "bilinear", "toy_est", 0),
            records([0.4, 0.5, 0.6], [0.0, 0.3, 0.9]))
  result, figures = run_report(root, tmp_path)
  figure3 = figures["figure3.png"]
  assert [p["title"] for p in figure3["panels"]] == [NCE, "toy_est"]
  assert list(panel(figure3, NCE)["lines"]) == ["bilinear", "toy_critic"]
  np.testing.assert_allclose(panel(figure3, NCE)["lines"]["toy_critic"]["mean"],
                             [0.5, 0.6, 0.8])
  np.testing.assert_allclose(panel(figure3, "toy_est")["lines"]["bilinear"]["mean"],
                             [0.4, 0.5, 0.6])
  assert [p["title"] for p in figures["figure6.png"]["panels"]] == [NCE, "toy_est"]
  configurations = [r["configuration"] for r in result.rows]
  assert "critic=toy_critic, estimator=nce" in configurations
  assert "critic=bilinear, estimator=toy_est" in configurations
  assert "toy_critic" in result.text and "toy_est" in result.text


def test_execution_settings_neither_split_nor_label(tmp_path):
  root = tmp_path / "runs"
  for critic in ("bilinear", "separable"):
    write_run(root, f"{critic}-a", two_view("E4", critic, "nce", 0, **{
        "train.fuse_steps": True, "run.steps_per_loop": 100, "run.jit_compile": True}),
              records([0.5, 0.6, 0.7], [0.0, 1.0, 2.0]))
    write_run(root, f"{critic}-b", two_view("E4", critic, "nce", 1, **{
        "train.fuse_steps": False, "run.steps_per_loop": 1, "run.jit_compile": False,
        "dataset.data_dir": "/elsewhere", "distribute.devices": ["/cpu:0"]}),
              records([0.7, 0.8, 0.9], [0.0, 1.0, 2.0]))
  result, figures = run_report(root, tmp_path)
  lines = panel(figures["figure3.png"], NCE)["lines"]
  assert list(lines) == ["bilinear", "separable"]
  assert lines["bilinear"]["n"] == [2, 2, 2]
  np.testing.assert_allclose(lines["separable"]["mean"], [0.6, 0.7, 0.8])
  legends = [label for d in figures.values() for p in d["panels"] for label in p["legend"]]
  assert legends and not any("fuse_steps" in label or "seed" in label for label in legends)
  assert [r["configuration"] for r in result.rows] == ["critic=bilinear", "critic=separable"]
  assert [r["seeds"] for r in result.rows] == ["2/2", "2/2"]
  table_part = result.text.split("## Unfinished")[0]
  assert "fuse_steps" not in table_part and "steps_per_loop" not in table_part


# case -> (the file broken, what it holds, the reason the report gives; None: a warning).
_MALFORMED = {
    "bad-results": (rundir.RESULTS, '[1, 2]\n{"accuracy": 0.1}\n', None),
    "binary-config": (rundir.CONFIG, "\x00\xff\xfe binary \x00", "not a readable gin config"),
    "truncated-baseline": (rundir.BASELINE, '{"pixel_accur', "baseline.json is not valid JSON"),
    "sweep_a": ("sweep.json", '{"runs": {"x-seed0": {}, "x-se', "not valid JSON"),
    "sweep_b": ("sweep.json", "[1, 2]", "no 'runs' object"),
}


@pytest.mark.parametrize("case", sorted(_MALFORMED))
def test_one_malformed_input_never_aborts_the_report(tmp_path, capsys, case):
  root = str(tmp_path / "runs")
  for critic, seed in (("bilinear", 0), ("separable", 1)):
    write_run(root, f"good-{critic}", two_view("E4", critic, "nce", seed),
              records([0.5, 0.6, 0.7], [0.0, 1.0, 2.0]))
  file, content, reason = _MALFORMED[case]
  if case.startswith("sweep"):
    os.makedirs(os.path.join(root, case))
  else:
    write_run(root, case, two_view("E4", "concat", "nce", 0),
              records([0.5, 0.6, 0.9], [0.0, 1.0, 2.0]))
  with open(os.path.join(root, case, file), "ab" if reason is None else "wb") as f:
    f.write(content.encode("latin-1"))
  name = os.path.join(case, file) if case.startswith("sweep") else case
  out = str(tmp_path / "out")
  assert cli.main([f"--runs={root}", f"--out={out}"]) == 0
  console = capsys.readouterr()
  text = open(os.path.join(out, "table.md")).read()
  skipped = text.split("## Skipped runs")[1].split("##")[0]
  warnings = text.split("## Warnings")[1].split("##")[0]
  loaded = load.find_runs(root)
  figure3 = figures_lib.layout(exp_lib.EXPERIMENTS["E4"].figures[0], loaded.runs)
  lines = panel({"panels": figure3}, NCE)["lines"]
  assert os.path.getsize(os.path.join(out, "figure3.png")) > 10_000
  if reason is None:  # the run is used with its good records, its bad lines named
    assert [w for n, w in loaded.warnings if n == name] == [
        "results.jsonl line 4: not a JSON object: '[1, 2]' (line ignored)",
        "results.jsonl line 5: no valid 'step' (got None) (line ignored)"]
    assert f"- {name}: results.jsonl line 4" in warnings and "(none)" in skipped
    assert list(lines) == ["bilinear", "separable", "MLP"]
    np.testing.assert_allclose(lines["MLP"]["mean"], [0.5, 0.6, 0.9])
    assert f"warning: {name}: results.jsonl line 4" in console.err
  else:
    assert [n for n, _ in loaded.skipped] == [name]
    assert reason in loaded.skipped[0][1]
    assert f"- {name}: " in skipped and reason in skipped
    assert list(lines) == ["bilinear", "separable"]
    assert f"warning: skipped {name}: " in console.err
    assert "## Skipped runs" in console.out and f"- {name}: " in console.out
  np.testing.assert_allclose(lines["separable"]["mean"], [0.5, 0.6, 0.7])


def test_pooled_condition_percentiles(tmp_path):
  root = tmp_path / "runs"
  rng = np.random.default_rng(0)
  raw = {(seed, step): rng.normal(seed + step, 1.0 + seed, size=128)
         for seed in (0, 1) for step in (0, 10, 20)}
  # NWJ: seed 1's last record holds only its percentiles, so that step falls back.
  for seed, estimator in ((0, "nce"), (1, "nce"), (0, "nwj"), (1, "nwj")):
    recs = records([0.8, 0.82, 0.84], [0.0, 1.0, 1.5])
    for r in recs:
      values = raw[seed, r["step"]]
      r["jacobian_log_condition_percentiles"] = np.percentile(values, exp_lib.PERCENTILES).tolist()
      if estimator == "nce" or seed == 0 or r["step"] != 20:
        r["jacobian_log_condition_numbers"] = values.tolist()
    write_run(root, f"skip-{estimator}-seed{seed}", two_view(
        "E3", "bilinear", estimator, seed, **{"train.encoder": "mlp_skip"}), recs)
  _, figures = run_report(root, tmp_path)
  assert len(figures["figure2.png"]["panels"]) == 3  # two twin panels and I_NCE's percentiles
  pooled = panel(figures["figure2.png"], f"{NCE}: log condition number of the Jacobian")
  assert list(pooled["lines"]) == [f"{p}th percentile" for p in exp_lib.PERCENTILES]
  for p in exp_lib.PERCENTILES:
    expected = [np.percentile(np.concatenate([raw[0, s], raw[1, s]]), p) for s in (0, 10, 20)]
    np.testing.assert_allclose(pooled["lines"][f"{p}th percentile"]["mean"], expected)
  mean_of_runs = np.mean([np.percentile(raw[s, 20], 80) for s in (0, 1)])
  assert not np.isclose(mean_of_runs, np.percentile(np.concatenate([raw[0, 20], raw[1, 20]]), 80))
  fallback = panel(figures["figure5.png"], f"{NWJ}: log condition number of the Jacobian")
  line = fallback["lines"]["80th percentile" + figures_lib.POOLED_FALLBACK]
  np.testing.assert_allclose(line["mean"][2], mean_of_runs)
  assert "80th percentile" + figures_lib.POOLED_FALLBACK in fallback["legend"]


@pytest.mark.parametrize("invertible", [True, False])
def test_figure1c_marks_points_that_are_not_invertible(tmp_path, invertible):
  root = tmp_path / "runs"
  bindings = {"run.experiment_id": "E2", "run.experiment": "adversarial", "run.num_steps": 20,
              "dataset.name": "mnist", "adversarial.encoder": "realnvp"}
  for seed in (0, 1):
    write_run(root, f"adv-seed{seed}", dict(bindings, **{"run.seed": seed}), [
        {"step": s, "accuracy": a, "reconstruction_error": 1e-6,
         "invertible": invertible or seed == 0 or s != 10}
        for s, a in zip((0, 10, 20), (0.85, 0.6, 0.4))])
  result, figures = run_report(root, tmp_path)
  accuracy = panel(figures["figure1c.png"], "Adversarial training")
  line = accuracy["lines"]["Test accuracy"]
  np.testing.assert_allclose(line["mean"], [0.85, 0.6, 0.4])
  assert line["not_invertible"] == ([] if invertible else [10])
  assert ("not invertible" in accuracy["legend"]) == (not invertible)
  assert "pixels" in accuracy["legend"]
  # The optional reconstruction panel is drawn; the min-scale one has no data.
  assert [p["title"] for p in figures["figure1c.png"]["panels"]] == [
      "Adversarial training", "Invertibility"]
  assert result.rows[0]["experiment"] == "E2"


def test_dataset_json_names_the_dataset(tmp_path):
  root = tmp_path / "runs"
  write_run(root, "subset", two_view("E4", "bilinear", "nce", 0, **{"dataset.name": "mnist"}),
            records([0.5, 0.6, 0.7], [0.0, 1.0, 2.0]), dataset="mnist_5k")
  write_run(root, "full", two_view("E4", "bilinear", "nce", 0, **{"dataset.name": "mnist"}),
            records([0.6, 0.7, 0.8], [0.0, 1.0, 2.0]))
  result, figures = run_report(root, tmp_path)
  assert sorted(figures) == ["figure3_mnist.png", "figure3_mnist_5k.png", "figure6_mnist.png",
                             "figure6_mnist_5k.png"]
  assert "mnist_5k;" in figures["figure3_mnist_5k.png"]["caption"]
  lines = panel(figures["figure3_mnist_5k.png"], NCE)["lines"]
  np.testing.assert_allclose(lines["Test accuracy"]["mean"], [0.5, 0.6, 0.7])
  assert sorted(r["dataset"] for r in result.rows) == ["mnist", "mnist_5k"]
  with open(tmp_path / "out" / "evaluations.csv") as f:
    assert {(r["run"], r["dataset"]) for r in csv.DictReader(f)} == {
        ("subset", "mnist_5k"), ("full", "mnist")}


def test_notebook_bound_and_target_gap_are_read(tmp_path):
  root = tmp_path / "runs"
  for critic, notebook in (("bilinear", [4.1, 4.2, 4.3]), ("separable", [4.0, 4.4, 4.6])):
    write_run(root, critic, two_view("E4", critic, "nce", 0), [dict(r, notebook_bound=n)
              for r, n in zip(records([0.5, 0.6, 0.7], [0.0, 1.0, 2.0]), notebook)])
  target = two_view("E5", "bilinear", "nce", 0, **{"train.target": 2.0})
  write_run(root, "target", target, [dict(r, test_target_gap=g)  # not |mean bound - t|
            for r, g in zip(records([0.5, 0.6, 0.7], [0.0, 1.5, 2.0]), (2.0, 0.7, 0.3))])
  result, figures = run_report(root, tmp_path)
  lines = panel(figures["figure6.png"], NCE)["lines"]
  assert list(lines) == ["bilinear", "bilinear (notebook: 20 train batches)", "separable",
                         "separable (notebook: 20 train batches)"]
  assert lines["bilinear (notebook: 20 train batches)"]["series"].style == ":"
  np.testing.assert_allclose(lines["separable (notebook: 20 train batches)"]["mean"], [4, 4.4, 4.6])
  gap = panel(figures["figure7.png"], f"{NCE}: test loss")["lines"]["test loss"]["mean"]
  np.testing.assert_allclose(gap, [2.0, 0.7, 0.3])
  rows = {r["configuration"]: r for r in result.rows}
  assert rows["critic=separable"]["notebook_bound"] == "4.600 ± 0.000"
  assert "notebook bound: 20 train batches" in result.text
  assert rows["encoder=mlp, critic=bilinear, estimator=nce, target=2.0"]["paper_bound"] == (
      "I_EST ≈ t = 2 (|I_EST - t| ≈ 0 after 7k steps)")


def test_cifar_figures_by_target_and_unknown_experiment(tmp_path):
  root = tmp_path / "runs"
  cifar = {"dataset.name": "cifar10"}
  write_run(root, "critic", two_view("E7", "concat", "nwj", 0, **cifar),
            records([0.2, 0.3, 0.3], [0.0, 1.0, 2.0]))
  write_run(root, "target", two_view("E7", "bilinear", "nce", 0, **cifar, **{"train.target": 4}),
            records([0.2, 0.3, 0.35], [0.0, 3.0, 4.0], test_target_gap=0.5))
  write_run(root, "new-study", two_view("my_study", "bilinear", "nce", 0),
            records([0.5, 0.6, 0.7], [0.0, 1.0, 2.0]))
  result, figures = run_report(root, tmp_path)
  assert sorted(figures) == ["figure8.png", "figure9.png"]
  assert [p["title"] for p in figures["figure8.png"]["panels"]] == [NWJ, f"{NWJ}: test bound"]
  assert [p["title"] for p in figures["figure9.png"]["panels"]] == [NCE, f"{NCE}: test loss"]
  by_id = {r["experiment"]: r for r in result.rows}
  assert sorted(by_id) == ["E7", "my_study"] and len(result.rows) == 3
  assert by_id["my_study"]["paper_accuracy"] == "" and "| my_study |" in result.text
  assert result.csv_rows == 9


def test_gaussian_and_staircase(tmp_path):
  root = tmp_path / "runs"
  for iid, estimates in ((False, (0.0, 0.05, 0.06)), (True, (0.0, 0.01, 0.015))):
    write_run(root, f"gaussian-iid{iid}", {
        "run.experiment_id": "E6", "run.experiment": "gaussian", "run.seed": 0,
        "run.num_steps": 20, "gaussian.estimator": "nce", "gaussian.iid": iid},
              [{"step": s, "estimate": e, "true_mi": 0.0204}
               for s, e in zip((0, 10, 20), estimates)], baseline=None)
  # Staircase records every 4 steps, each with the estimates of the steps since the last.
  truth = {s: 2.0 if s <= 8 else 4.0 for s in range(0, 17, 4)}
  write_run(root, "staircase", {
      "run.experiment_id": "staircase", "run.experiment": "staircase", "run.seed": 0,
      "run.num_steps": 16, "staircase.critic": "separable", "staircase.estimator": "nwj"},
            [dict({"step": s, "estimate": s / 2, "true_mi": t, "step_estimates": [
                t / 2 for t in range(max(s - 3, 1), s + 1)]},
                  **({"stage_estimate": s / 2} if s in (8, 16) else {}))
             for s, t in truth.items()], baseline=None)
  for cubic in (False, True):  # an estimator with its own binding, in two variants
    write_run(root, f"staircase-smile-cubic{cubic}", {
        "run.experiment_id": "staircase", "run.experiment": "staircase", "run.seed": 0,
        "run.num_steps": 16, "staircase.critic": "separable", "staircase.estimator": "smile",
        "smile.tau": 5.0, "staircase.cubic": cubic},
              [{"step": s, "estimate": 1.0, "true_mi": t, "step_estimates": [1.0]}
               for s, t in truth.items()], baseline=None)
  result, figures = run_report(root, tmp_path)
  smile = panel(figures["staircase.png"], "separable, smile")
  # The legend names what differs within the panel, by the paper's names; not smile.tau.
  assert list(smile["lines"]) == ["Gaussian (estimate)", "Gaussian (smoothed)",
                                  "cubic (estimate)", "cubic (smoothed)"]
  gaussian = panel(figures["figure4c.png"], "Estimates")
  assert list(gaussian["lines"]) == ["i.i.d.", "non-i.i.d."]  # the estimator is common
  np.testing.assert_allclose(gaussian["lines"]["i.i.d."]["mean"], [0.0, 0.01, 0.015])
  assert gaussian["truth"]["values"] == [0.0204] * 3 and "true MI" in gaussian["legend"]
  stairs = panel(figures["staircase.png"], f"separable, {NWJ}")
  assert stairs["truth"] == {"steps": list(truth), "values": list(truth.values())}
  assert list(stairs["lines"]) == ["estimate", "smoothed", "stage estimate"]
  assert stairs["lines"]["estimate"]["steps"] == list(range(17))
  np.testing.assert_allclose(stairs["lines"]["estimate"]["mean"], np.arange(17) / 2)
  # Smoothed over the stage so far: it restarts where the true MI changes (after step 8).
  np.testing.assert_allclose(stairs["lines"]["smoothed"]["mean"],
                             [s / 4 for s in range(9)] + [(9 + s) / 4 for s in range(9, 17)])
  assert stairs["lines"]["stage estimate"]["steps"] == [8, 16]
  assert "true MI 2, 4, 6, 8, 10 nats" in result.text


def test_command_line_bad_runs_is_one_error_line_without_tensorflow(tmp_path):
  # `python -m mi_repr_tf.report` (runpy, as -m does), then: was TensorFlow imported?
  script = ("import runpy, sys\n"
            "sys.argv = ['report', '--runs=/no/such/dir', '--out=%s']\n"
            "try:\n"
            "  runpy.run_module('mi_repr_tf.report', run_name='__main__', alter_sys=True)\n"
            "except SystemExit as e:\n"
            "  assert 'tensorflow' not in sys.modules, 'the report imported TensorFlow'\n"
            "  raise\n") % (tmp_path / "out")
  bad = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120)
  assert bad.returncode == 2, bad.stderr
  assert bad.stderr.startswith("error:") and len(bad.stderr.strip().splitlines()) == 1
  assert "/no/such/dir" in bad.stderr and not (tmp_path / "out").exists()
