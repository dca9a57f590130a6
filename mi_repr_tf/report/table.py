"""The report's text outputs: table.md (results per configuration next to the paper's
numbers, then unfinished, missing and skipped runs) and evaluations.csv (every evaluation).

A table row is one configuration of one experiment id: its finished runs' final evaluation,
mean ± sample standard deviation over seeds. Rows are named by the bindings that tell the
configurations of an experiment apart (never by seeds or execution settings).
"""

import collections
import csv
import json
import os

from mi_repr_tf import rundir
from mi_repr_tf.report import experiments as exp_lib
from mi_repr_tf.report import load

PREFERRED = ("encoder", "critic", "estimator", "target", "iid")
COLUMNS = [("configuration", "configuration"), ("experiment", "exp."),
           ("dataset", "dataset"), ("seeds", "seeds (finished/all)"),
           ("step", "final step"), ("accuracy", "test accuracy % (mean ± std)"),
           ("test_bound", "test bound (mean ± std)"),
           ("notebook_bound", "notebook bound: 20 train batches (mean ± std)"),
           ("pixels", "pixels %"), ("paper_accuracy", "paper: accuracy (MNIST)"),
           ("paper_bound", "paper: bound")]


def _pm(values, scale=1.0, digits=3):
  if not values:
    return "—"
  mean, std = load.mean_std(values)
  return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def _values(read, records):
  return [v for v in (read(r) for r in records) if v is not None]


def experiment_order(ids):
  """The experiment ids in the table's order: those of the experiment table first."""
  known = [i for i in exp_lib.EXPERIMENTS if i in ids]
  return known + sorted(set(ids) - set(known))


def row(experiment_id, runs, keys):
  """The table row of one configuration (`runs` differ only in seeds)."""
  setting = runs[0].setting
  finished = [r for r in runs if r.status == rundir.FINISHED and r.records]
  finals = [r.records[-1] for r in finished]
  paper_accuracy, paper_bound = exp_lib.reference(experiment_id, setting)
  return {
      "configuration": exp_lib.plain_label(setting, keys) or "(one configuration)",
      "experiment": experiment_id,
      "dataset": runs[0].dataset,
      "seeds": f"{len(finished)}/{len(runs)}",
      "step": "/".join(str(s) for s in sorted({f["step"] for f in finals})) or "—",
      "accuracy": _pm(_values(exp_lib.ACCURACY, finals), 100, 2),
      "test_bound": _pm(_values(exp_lib.BOUND, finals)),
      "notebook_bound": _pm(_values(exp_lib.NOTEBOOK, finals)),
      "pixels": _pm([r.baseline for r in runs if r.baseline is not None], 100, 2),
      "paper_accuracy": paper_accuracy,
      "paper_bound": paper_bound,
  }


def table_rows(runs):
  """One row per configuration, by experiment id (see `row`)."""
  by_experiment = collections.defaultdict(list)
  for run in runs:
    by_experiment[run.experiment_id].append(run)
  rows = []
  for experiment_id in experiment_order(by_experiment):
    groups = load.group_runs(by_experiment[experiment_id]).values()
    settings = [g[0].setting for g in groups]
    keys = load.label_keys(settings, PREFERRED, label=exp_lib.plain_label)
    if len(settings) == 1:  # nothing to tell apart: name the main choices
      keys = [k for p in PREFERRED for k in sorted(settings[0]) if load.short(k) == p]
    for group in sorted(groups, key=lambda g: exp_lib.rank(g[0].setting, keys)):
      rows.append(row(experiment_id, group, keys))
  return rows


def columns(rows):
  """The table's columns; the notebook bound only when some run records it."""
  has_notebook = any(r["notebook_bound"] != "—" for r in rows)
  return [c for c in COLUMNS if c[0] != "notebook_bound" or has_notebook]


def markdown_table(rows):
  chosen = columns(rows)
  lines = ["| " + " | ".join(title for _, title in chosen) + " |",
           "|" + "---|" * len(chosen)]
  for r in rows:
    lines.append("| " + " | ".join(r[key].replace("|", "\\|") for key, _ in chosen) + " |")
  return "\n".join(lines)


def not_done(loaded):
  """(unfinished, missing): lines for the runs that are not finished and for the runs a
  sweep manifest plans that have no run directory."""
  unfinished = []
  for run in loaded.runs:
    if run.status == rundir.FINISHED:
      continue
    where = (f"last evaluation at step {run.last_step}" if run.records
             else "no evaluation yet")
    log = f" (log: {loaded.planned[run.name]})" if run.name in loaded.planned else ""
    unfinished.append(f"- {run.name}: {run.status}, {where}{log}")
  present = {r.name for r in loaded.runs} | {name for name, _ in loaded.skipped}
  missing = [f"- {name}: no run directory (log: {log})"
             for name, log in sorted(loaded.planned.items()) if name not in present]
  return unfinished, missing


def _section(title, lines):
  return [f"## {title}", ""] + (lines or ["(none)"]) + [""]


def markdown(root, loaded, rows, figure_files):
  """The text of table.md."""
  unfinished, missing = not_done(loaded)
  finished = sum(r.status == rundir.FINISHED for r in loaded.runs)
  text = [f"# Results of the runs under {os.path.abspath(root)}", "",
          f"{len(loaded.runs)} run directories: {finished} finished, {len(unfinished)} "
          f"unfinished; {len(loaded.skipped)} skipped; {len(missing)} planned runs missing. "
          "Final values are over the finished runs: mean ± sample standard deviation over "
          "seeds. The paper's numbers are for MNIST (CIFAR10 for E7) after 21,000 steps "
          "(SPEC.md); for other data or shorter schedules compare the direction (e.g. "
          "against the pixel-space probe), not the value.", "", markdown_table(rows), ""]
  text += _section("Unfinished runs", unfinished)
  text += _section("Missing runs (planned by a sweep, no run directory)", missing)
  text += _section("Skipped runs", [f"- {name}: {why}" for name, why in loaded.skipped])
  text += _section("Warnings", [f"- {name}: {what}" for name, what in loaded.warnings])
  text += _section("Figures", [f"- {os.path.basename(f)}" for f in figure_files])
  return "\n".join(text)


# --------------------------------------------------------------------------- CSV


def _cell(value, binding=False):
  if value is None or isinstance(value, (bool, int, float, str)):
    return value
  if binding:
    return repr(value)
  try:
    return json.dumps(value)
  except (TypeError, ValueError):
    return repr(value)


def write_csv(runs, path):
  """Writes one row per evaluation; returns the number of rows.

  Columns: run, status, experiment (run.experiment_id), dataset (the dataset used), every
  binding of every run, pixel_accuracy, then every record key (nested dicts as 'a.b'; a list
  such as the raw condition numbers is one cell of JSON).
  """
  binding_keys = sorted({k for r in runs for k in r.bindings})
  result_keys = []
  for run in runs:
    for record in run.records:
      result_keys += [k for k in load.flatten(record) if k not in result_keys]
  fixed_keys = ["run", "status", "experiment", "dataset"]
  result_keys = [k for k in result_keys if k not in fixed_keys]
  header = [*fixed_keys, *binding_keys, "pixel_accuracy", *result_keys]
  count = 0
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, header, extrasaction="ignore")
    writer.writeheader()
    for run in runs:
      fixed = {"run": run.name, "status": run.status, "experiment": run.experiment_id,
               "dataset": run.dataset, "pixel_accuracy": run.baseline,
               **{k: _cell(run.bindings.get(k), binding=True) for k in binding_keys}}
      for record in run.records:
        flat = {k: _cell(v) for k, v in load.flatten(record).items() if k not in fixed_keys}
        writer.writerow({**fixed, **flat})
        count += 1
  return count
