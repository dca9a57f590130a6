r"""The paper's figures, a CSV and a table of results, from the runs under a folder.

    python -m mi_repr_tf.report --runs=runs/critic_study --out=report/critic_study

reads every run directory below --runs (any folder holding an operative_config.gin; see
`rundir`) and writes to --out:

    figure1ab.png, figure1c.png, figure2.png, figure3.png, figure4ab.png, figure4c.png,
    figure5.png ... figure9.png   the figures the runs can supply: mean and standard
                                  deviation over seeds against the training step, one
                                  panel per subplot of the paper, with its axes and legends
    evaluations.csv               every evaluation of every run, with the run's bindings
    table.md                      final accuracy and test bound per configuration (mean and
                                  standard deviation over seeds) next to the paper's numbers
                                  (SPEC.md), then the runs that are unfinished or missing

A run's configuration comes from its operative config alone; runs that differ only in their
seed form one configuration. Which figure a run belongs to follows from its bindings (see
FIGURES and `experiment_of`). Runs planned by a sweep (its sweep.json) that have no run
directory are listed as missing; unfinished runs are drawn with the evaluations they have and
listed as unfinished; neither is dropped silently.
"""

import collections
import csv
import dataclasses
import json
import math
import os
import re
import sys

from absl import app
from absl import flags
import numpy as np

from mi_repr_tf import hparams as hparams_lib
from mi_repr_tf import rundir
from mi_repr_tf import sweep as sweep_lib

MNIST_LIKE = ("mnist", "fashion_mnist", "mnist_5k")
# Bindings that do not change what a run computes, or only its seed: not part of the
# configuration that runs are grouped by.
_NOT_CONFIG = re.compile(r"(^|\.)(\w*seed|data_dir|download|jit_compile|steps_per_loop|"
                         r"log_every_secs)$")


# --------------------------------------------------------------------------- reading runs

@dataclasses.dataclass
class Run:
  name: str  # path relative to --runs
  path: str
  config: dict
  records: list
  baseline: float  # pixel-space probe accuracy, or None
  status: str

  @property
  def group(self):
    return config_key(self.config)

  @property
  def last_step(self):
    return self.records[-1]["step"] if self.records else None


def config_key(config):
  """The configuration a run belongs to: its bindings without seeds and paths."""
  return tuple(sorted((k, repr(v)) for k, v in config.items() if not _NOT_CONFIG.search(k)))


def read_records(workdir):
  """The complete records of results.jsonl by step (read-only: a torn last line is skipped)."""
  records = []
  try:
    with open(os.path.join(workdir, rundir.RESULTS)) as f:
      for line in f:
        try:
          records.append(json.loads(line))
        except json.JSONDecodeError:
          break
  except FileNotFoundError:
    pass
  return sorted(records, key=lambda r: r["step"])


def find_runs(root):
  """(runs, planned): every run directory below `root`, and the runs named by sweep.json
  manifests below it as {relative name: log path}."""
  runs, planned = [], {}
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    if "sweep.json" in filenames:
      with open(os.path.join(dirpath, "sweep.json")) as f:
        manifest = json.load(f)
      for name in manifest.get("runs", {}):
        rel = os.path.relpath(os.path.join(dirpath, name), root)
        planned[rel] = os.path.join(dirpath, "logs", name + ".log")
    if rundir.CONFIG in filenames:
      dirnames[:] = []  # a run directory: its subfolders are its own
      baseline = rundir.read_json(dirpath, rundir.BASELINE) or {}
      runs.append(Run(
          name=os.path.relpath(dirpath, root), path=dirpath,
          config=hparams_lib.read_config(os.path.join(dirpath, rundir.CONFIG)),
          records=read_records(dirpath), baseline=baseline.get("pixel_accuracy"),
          status=sweep_lib.run_status(dirpath)))
  return runs, planned


def flatten(record, prefix=""):
  """Nested dicts become 'a.b' keys and lists 'a[i]' keys."""
  flat = {}
  for key, value in record.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict):
      flat.update(flatten(value, name + "."))
    elif isinstance(value, (list, tuple)):
      for i, v in enumerate(value):
        if isinstance(v, dict):
          flat.update(flatten(v, f"{name}[{i}]."))
        else:
          flat[f"{name}[{i}]"] = v
    else:
      flat[name] = value
  return flat


# --------------------------------------------------------------------------- experiments

def _get(config, key, default=None):
  return config.get(key, default)


def experiment_of(config):
  """Which experiment of SPEC.md (E1-E7) a run's bindings describe, or None."""
  name = str(_get(config, "experiment.name", "two_view"))
  if "advers" in name:
    return "E2"
  if any(s in name for s in ("gauss", "iid", "synthetic")):
    return "E6"
  encoder = _get(config, "train.encoder")
  cifar = _get(config, "dataset.name") == "cifar10"
  if encoder == "realnvp":
    return "E1"
  if encoder == "mlp_skip":
    return "E3"
  if encoder in ("mlp", "convnet") and _get(config, "train.target") is not None:
    return "E7" if cifar else "E5"
  if encoder == "mlp":
    return "E7" if cifar else "E4"
  return None


def _e4(config, cifar=False):
  return (experiment_of(config) == ("E7" if cifar else "E4")
          and _get(config, "train.target") is None)


def _e5(config, cifar=False):
  return (experiment_of(config) == ("E7" if cifar else "E5")
          and _get(config, "train.target") is not None)


def _estimator(name):
  return lambda config: _get(config, "train.estimator") == name


# --------------------------------------------------------------------------- metrics

def metric(*keys):
  """A metric read from the first of `keys` present in a record."""
  def read(record, config):
    del config
    for key in keys:
      if key in record and record[key] is not None:
        return float(record[key])
    return None
  return read


def target_gap(record, config):
  """|I_EST - t| on the test set (Section 3.3's loss L_t)."""
  if "test_target_gap" in record:
    return float(record["test_target_gap"])
  target = _get(config, "train.target")
  return abs(record["test_bound"] - target) if target is not None else None


def condition_percentiles(record):
  """{percentile: value} of the log condition numbers a record holds (Section 3.1)."""
  found = {}
  for key, value in flatten(record).items():
    if "cond" not in key.lower() or not isinstance(value, (int, float)):
      continue
    m = re.search(r"\[(\d+)\]$", key)
    if m:
      siblings = [k for k in flatten(record) if k.startswith(key[:m.start()] + "[")]
      found[round(100 * int(m.group(1)) / max(len(siblings) - 1, 1))] = float(value)
      continue
    m = re.search(r"(\d+)$", key)
    if m and 0 <= int(m.group(1)) <= 100:
      found[int(m.group(1))] = float(value)
  return found


def true_mi(records):
  for record in records:
    for key, value in flatten(record).items():
      if "true_mi" in key and isinstance(value, (int, float)):
        return float(value)
  return None


ACCURACY = metric("accuracy")
BOUND = metric("test_bound", "estimate", "mi_estimate")


# --------------------------------------------------------------------------- figures

NCE, NWJ = r"$I_{\mathrm{NCE}}$", r"$I_{\mathrm{NWJ}}$"
PRETTY = {  # legend names, by the last part of a binding's key
    "critic": {"inner_product": "inner product", "bilinear": "bilinear",
               "separable": "separable", "concat": "MLP"},
    "encoder": {"mlp": "MLP", "convnet": "ConvNet", "mlp_skip": "MLP with skips",
                "realnvp": "RealNVP"},
    "estimator": {"nce": NCE, "nwj": NWJ},
    "iid": {True: "i.i.d.", False: "non-i.i.d."},
}


def _short(key):
  return key.rsplit(".", 1)[-1]


def pretty(key, value):
  short = _short(key)
  if short in PRETTY and value in PRETTY[short]:
    return PRETTY[short][value]
  if short == "target":
    return f"t={value:g}" if isinstance(value, (int, float)) else f"t={value}"
  return f"{short}={value}"


@dataclasses.dataclass
class Panel:
  title: str
  ylabel: str
  read: object  # (record, config) -> float or None
  select: object = None  # config -> bool, within the figure's runs
  baseline: bool = False  # the pixel-space probe as a dashed line
  right: object = None  # a second metric on a right-hand axis: (ylabel, read)
  percentiles: bool = False  # one line per percentile of the log condition number
  truth: bool = False  # the true MI as a dashed line


@dataclasses.dataclass
class Figure:
  file: str
  caption: str
  select: object  # config -> bool
  panels: list
  rows: int = 1
  line_keys: tuple = ()  # bindings (last part of the key) that name the lines, first


def _acc(title, estimator, **kw):
  return Panel(title, "Test accuracy", ACCURACY, _estimator(estimator), baseline=True, **kw)


def _bound(title, estimator, ylabel):
  return Panel(title, ylabel, BOUND, _estimator(estimator))


def _gap(title, estimator):
  return Panel(title, r"Test loss $|I_{\mathrm{EST}} - t|$", target_gap, _estimator(estimator))


def _twin(title, estimator):
  return _acc(title, estimator, right=(f"Test {title}", BOUND))


FIGURES = [
    Figure("figure1ab.png", "Figure 1a, b (Section 3.1): invertible RealNVP encoders",
           lambda c: experiment_of(c) == "E1", [_twin(NCE, "nce"), _twin(NWJ, "nwj")]),
    Figure("figure1c.png", "Figure 1c (Section 3.1, App. B): adversarially trained "
           "invertible encoder", lambda c: experiment_of(c) == "E2",
           [Panel("Adversarial", "Test accuracy", ACCURACY, baseline=True)]),
    Figure("figure2.png", "Figure 2 (Section 3.1): MLP encoder with skip connections",
           lambda c: experiment_of(c) == "E3",
           [_twin(NCE, "nce"), _twin(NWJ, "nwj"),
            Panel(f"{NCE}: log condition number of the Jacobian", "log(σ_max / σ_min)",
                  None, _estimator("nce"), percentiles=True)]),
    Figure("figure3.png", "Figure 3 (Section 3.2): critic architectures", _e4,
           [_acc(NCE, "nce"), _acc(NWJ, "nwj"), _bound(NWJ, "nwj", f"Test {NWJ}")],
           line_keys=("critic",)),
    Figure("figure4ab.png", "Figure 4a, b (Section 3.3): encoders trained to a target "
           "I_EST = t", _e5, [_acc(NCE, "nce"), _acc(NWJ, "nwj")],
           line_keys=("encoder", "target")),
    Figure("figure4c.png", "Figure 4c (Section 4): i.i.d. and non-i.i.d. negatives",
           lambda c: experiment_of(c) == "E6",
           [Panel("Estimates", r"$I_{\mathrm{EST}}$", BOUND, truth=True)],
           line_keys=("estimator", "iid")),
    Figure("figure5.png", "Figure 5 (App. F): log condition number for I_NWJ",
           lambda c: experiment_of(c) == "E3",
           [Panel(f"{NWJ}: log condition number of the Jacobian", "log(σ_max / σ_min)",
                  None, _estimator("nwj"), percentiles=True)]),
    Figure("figure6.png", "Figure 6 (App. F): test I_NCE for different critics", _e4,
           [_bound(NCE, "nce", f"Test {NCE}")], line_keys=("critic",)),
    Figure("figure7.png", "Figure 7 (App. F): test loss |I_EST - t|", _e5,
           [_gap(NCE, "nce"), _gap(NWJ, "nwj")],
           line_keys=("encoder", "target")),
    Figure("figure8.png", "Figure 8 (App. G): critic architectures on CIFAR10",
           lambda c: _e4(c, cifar=True),
           [_acc(NCE, "nce"), _acc(NWJ, "nwj"), _bound(NCE, "nce", f"Test {NCE}"),
            _bound(NWJ, "nwj", f"Test {NWJ}")], rows=2, line_keys=("critic",)),
    Figure("figure9.png", "Figure 9 (App. G): encoders trained to a target I_EST = t on "
           "CIFAR10", lambda c: _e5(c, cifar=True),
           [_acc(NCE, "nce"), _acc(NWJ, "nwj"), _gap(NCE, "nce"), _gap(NWJ, "nwj")],
           rows=2, line_keys=("encoder", "target")),
]


def _varying(configs):
  """Configuration keys whose values differ between `configs`."""
  keys = sorted({k for c in configs for k in c if not _NOT_CONFIG.search(k)})
  return [k for k in keys if len({repr(c.get(k)) for c in configs}) > 1]


def _rank(config, keys):
  """Sort key of a configuration: the paper's order of the values it names (PRETTY)."""
  rank = []
  for k in keys:
    order = list(PRETTY.get(_short(k), {}))
    value = config.get(k)
    rank.append((order.index(value) if value in order else len(order), repr(value)))
  return rank


def _line_label(config, keys):
  return ", ".join(pretty(k, config[k]) for k in keys if k in config)


def _plain_label(config, keys):
  shorts = [_short(k) for k in keys]

  def text(k):
    value = config[k]
    alias = " (MLP)" if _short(k) == "critic" and value == "concat" else ""  # the paper's name
    return f"{_short(k) if shorts.count(_short(k)) == 1 else k}={value}{alias}"
  return ", ".join(text(k) for k in keys if k in config)


def label_keys(configs, preferred=()):
  """The keys that tell `configs` apart, `preferred` first.

  Keys of a component only some configs use (concat.hidden_units when the critic differs)
  are left out unless the labels would collide without them.
  """
  varying = _varying(configs)
  common = [k for k in varying if all(k in c for c in configs)]
  for keys in (common, varying):
    first = [k for p in preferred for k in keys if _short(k) == p]
    keys = first + [k for k in keys if k not in first]
    if len({_line_label(c, keys) for c in configs}) == len({config_key(c) for c in configs}):
      return keys
  return keys


def mean_std(values):
  """Mean and sample standard deviation (0 for a single value)."""
  values = np.asarray(values, dtype=float)
  std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
  return float(np.mean(values)), std


def curves(runs, read):
  """{step: [values over runs]} of `read` for runs of one configuration."""
  by_step = collections.defaultdict(list)
  for run in runs:
    for record in run.records:
      value = read(record, run.config)
      if value is not None and math.isfinite(value):
        by_step[record["step"]].append(value)
  return dict(sorted(by_step.items()))


def _summary(by_step):
  steps = list(by_step)
  stats = [mean_std(v) for v in by_step.values()]
  return {"steps": steps, "mean": [m for m, _ in stats], "std": [s for _, s in stats],
          "n": [len(v) for v in by_step.values()]}


def panel_lines(panel, runs, line_keys):
  """{legend label: summary} for one panel: one line per configuration (or percentile)."""
  runs = [r for r in runs if panel.select is None or panel.select(r.config)]
  groups = collections.OrderedDict()
  for run in sorted(runs, key=lambda r: r.name):
    groups.setdefault(run.group, []).append(run)
  keys = label_keys([g[0].config for g in groups.values()], line_keys)
  lines = collections.OrderedDict()
  for group_runs in sorted(groups.values(), key=lambda g: _rank(g[0].config, keys)):
    label = _line_label(group_runs[0].config, keys)
    if panel.percentiles:
      # Mean over seeds of each run's percentile (the paper pools the samples of all runs).
      pct = sorted({p for r in group_runs for rec in r.records
                    for p in condition_percentiles(rec)})
      for p in pct:
        read = lambda rec, cfg, p=p: condition_percentiles(rec).get(p)
        name = f"{p}th percentile" + (f" ({label})" if label else "")
        lines[name] = _summary(curves(group_runs, read))
      continue
    lines[label or panel.ylabel] = _summary(curves(group_runs, panel.read))
    if panel.right:
      lines[(label + ": " if label else "") + panel.right[0]] = dict(
          _summary(curves(group_runs, panel.right[1])), right=True)
  return lines, runs


def draw_figure(figure, runs, out_dir, suffix=""):
  """Draws `figure` from `runs` into out_dir; returns {panel title: lines} (what was drawn)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  cols = math.ceil(len(figure.panels) / figure.rows)
  fig, axes = plt.subplots(figure.rows, cols, figsize=(5.2 * cols, 3.9 * figure.rows),
                           squeeze=False)
  drawn, colors = {}, {}
  palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  seeds = collections.Counter(r.group for r in runs)
  for k, (ax, panel) in enumerate(zip(axes.flat, figure.panels)):
    lines, panel_runs = panel_lines(panel, runs, figure.line_keys)
    right_ax = ax.twinx() if panel.right else None
    for label, line in lines.items():
      if not line["steps"]:
        continue
      target_ax = right_ax if line.get("right") else ax
      color = colors.setdefault(label, palette[len(colors) % len(palette)])
      steps, mean, std = (np.asarray(line[k]) for k in ("steps", "mean", "std"))
      target_ax.plot(steps, mean, color=color, label=label,
                     linestyle=":" if line.get("right") else "-", marker="o", markersize=2.5)
      target_ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.2, lw=0)
    baselines = [r.baseline for r in panel_runs if r.baseline is not None]
    if panel.baseline and baselines:
      ax.axhline(float(np.mean(baselines)), color="gray", linestyle="--", label="pixels")
    truth = [t for t in (true_mi(r.records) for r in panel_runs) if t is not None]
    if panel.truth and truth:
      ax.axhline(truth[0], color="black", linestyle="--", label="true MI")
    if not any(line["steps"] for line in lines.values()):
      ax.text(0.5, 0.5, "no runs for this panel", ha="center", va="center",
              transform=ax.transAxes, color="gray")
    ax.set_title(f"({'abcdefgh'[k]}) {panel.title}" if len(figure.panels) > 1 else panel.title)
    ax.set_xlabel("Iteration")
    ax.set_ylabel(panel.ylabel)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if right_ax is not None:
      right_ax.set_ylabel(panel.right[0])
      more = right_ax.get_legend_handles_labels()
      handles, labels = handles + more[0], labels + more[1]
    if handles:
      ax.legend(handles, labels, fontsize=8, loc="best")
    drawn[panel.title] = lines
  for ax in list(axes.flat)[len(figure.panels):]:
    ax.set_visible(False)
  datasets = sorted({str(r.config.get("dataset.name")) for r in runs})
  n = sorted(set(seeds.values()))
  fig.suptitle(f"{figure.caption}\n{', '.join(datasets)}; mean ± std over "
               f"{'/'.join(map(str, n))} seed(s) per line", fontsize=10)
  fig.tight_layout()
  path = os.path.join(out_dir, figure.file.replace(".png", f"{suffix}.png"))
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path, drawn


def draw_figures(runs, out_dir):
  """Every figure some runs can supply: {file path: {panel title: lines}}."""
  results = {}
  for figure in FIGURES:
    chosen = [r for r in runs if r.records and figure.select(r.config)]
    if not chosen:
      continue
    by_dataset = collections.defaultdict(list)
    for r in chosen:
      by_dataset[str(r.config.get("dataset.name"))].append(r)
    for dataset, dataset_runs in sorted(by_dataset.items()):
      suffix = f"_{dataset}" if len(by_dataset) > 1 else ""
      path, drawn = draw_figure(figure, dataset_runs, out_dir, suffix)
      results[path] = drawn
  return results


# --------------------------------------------------------------------------- the table

def paper_reference(config):
  """(accuracy, bound) the paper reports for this configuration (SPEC.md), as text."""
  exp = experiment_of(config)
  critic = config.get("train.critic")
  estimator = config.get("train.estimator")
  target = config.get("train.target")
  if exp == "E4":
    acc = ("barely above pixels (≈85%)" if critic == "concat"
           else "clearly above pixels (≈85%)")
    if estimator == "nce":
      bound = "close to log 128 = 4.85 for all critics"
    else:
      bound = ("highest I_NWJ of the critics" if critic == "concat"
               else "lower I_NWJ than the MLP critic")
    return acc, bound
  if exp == "E5" or (exp == "E7" and target is not None):
    base = "24%" if exp == "E7" else "85%"
    acc = ("ConvNet > MLP" + ("" if exp == "E7" else " (plot range 78-92%)")
           + f"; pixels ≈{base}")
    return acc, f"I_EST ≈ t = {target:g} (|I_EST - t| ≈ 0 after 7k steps)"
  if exp == "E7":
    acc = ("≈ pixels (≈24%)" if critic == "concat" else "above pixels (≈24%)")
    return acc, "as MNIST: I_NWJ highest for the MLP critic" if estimator == "nwj" else ""
  if exp == "E1":
    if estimator == "nce":
      return ("86.2% → 89.7% ± 0.2 (3rd-party rerun, 10 seeds)",
              "4.77 at 20k (≤ log 128 = 4.85)")
    return "≈86% → ≈89.5-90%", "rises while the true MI is constant"
  if exp == "E2":
    return "falls well below pixels (≈85%)", "(no estimator)"
  if exp == "E3":
    return "rises within 83-90% (noisy pixels ≈83.5-84%)", "rises"
  if exp == "E6":
    return "", "true MI ≈ 0.0204 nats: non-i.i.d. above it, i.i.d. below"
  return "", ""


def _pm(values, scale=1.0, digits=3):
  if not values:
    return "—"
  m, s = mean_std(values)
  return f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}"


def table_rows(runs):
  """One row per configuration: the final evaluation of its finished runs.

  Rows are ordered by experiment; a row is named by the bindings that tell it apart from the
  other configurations of its experiment.
  """
  experiments = collections.defaultdict(lambda: collections.OrderedDict())
  for run in sorted(runs, key=lambda r: r.name):
    experiments[experiment_of(run.config) or "?"].setdefault(run.group, []).append(run)
  rows = []
  for exp in sorted(experiments):
    groups = experiments[exp]
    preferred = ("encoder", "critic", "estimator", "target", "iid")
    keys = label_keys([g[0].config for g in groups.values()], preferred)
    if len(groups) == 1:  # nothing to tell apart: name the main choices
      config = next(iter(groups.values()))[0].config
      keys = [k for p in preferred for k in sorted(config) if _short(k) == p]
    for group_runs in sorted(groups.values(), key=lambda g: _rank(g[0].config, keys)):
      rows.append(_table_row(exp, group_runs, keys))
  return rows


def _table_row(exp, group_runs, keys):
  config = group_runs[0].config
  finished = [r for r in group_runs if r.status == sweep_lib.FINISHED and r.records]
  finals = [r.records[-1] for r in finished]
  acc_ref, bound_ref = paper_reference(config)
  return {
      "configuration": _plain_label(config, keys) or "(one configuration)",
      "experiment": exp,
      "dataset": str(config.get("dataset.name", "")),
      "seeds": f"{len(finished)}/{len(group_runs)}",
      "step": str(finals[0]["step"]) if finals else "—",
      "accuracy": _pm([f["accuracy"] for f in finals if "accuracy" in f], 100, 2),
      "test_bound": _pm([v for v in (BOUND(f, config) for f in finals) if v is not None]),
      "pixels": _pm([r.baseline for r in group_runs if r.baseline is not None], 100, 2),
      "paper_accuracy": acc_ref,
      "paper_bound": bound_ref,
  }


TABLE_COLUMNS = [("configuration", "configuration"), ("experiment", "exp."),
                 ("dataset", "dataset"), ("seeds", "seeds (finished/all)"),
                 ("step", "final step"), ("accuracy", "test accuracy % (mean ± std)"),
                 ("test_bound", "test bound (mean ± std)"), ("pixels", "pixels %"),
                 ("paper_accuracy", "paper: accuracy (MNIST)"),
                 ("paper_bound", "paper: bound")]


def markdown_table(rows):
  lines = ["| " + " | ".join(title for _, title in TABLE_COLUMNS) + " |",
           "|" + "---|" * len(TABLE_COLUMNS)]
  for row in rows:
    lines.append("| " + " | ".join(row[key].replace("|", "\\|")
                                   for key, _ in TABLE_COLUMNS) + " |")
  return "\n".join(lines)


def not_done(runs, planned, root):
  """Lines for the unfinished runs and for the planned runs that have no run directory."""
  unfinished = [f"- {r.name}: {r.status}, " + (f"last evaluation at step {r.last_step}"
                                                if r.records else "no evaluation yet")
                + (f" (log: {planned[r.name]})" if r.name in planned else "")
                for r in runs if r.status != sweep_lib.FINISHED]
  present = {r.name for r in runs}
  missing = [f"- {name}: no run directory (log: {log})" for name, log in sorted(planned.items())
             if name not in present]
  del root
  return unfinished, missing


# --------------------------------------------------------------------------- CSV

def write_csv(runs, path):
  """One row per evaluation: run, status, experiment, the run's bindings, then its numbers."""
  config_keys = sorted({k for r in runs for k in r.config})
  result_keys = []
  for run in runs:
    for record in run.records:
      for key in flatten(record):
        if key not in result_keys:
          result_keys.append(key)
  columns = ["run", "status", "experiment", *config_keys, "pixel_accuracy", *result_keys]
  count = 0
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, columns)
    writer.writeheader()
    for run in runs:
      fixed = {"run": run.name, "status": run.status,
               "experiment": experiment_of(run.config) or "",
               "pixel_accuracy": run.baseline,
               **{k: _csv_value(run.config.get(k)) for k in config_keys}}
      for record in run.records:
        writer.writerow({**fixed, **flatten(record)})
        count += 1
  return count


def _csv_value(value):
  return value if isinstance(value, (int, float, str)) or value is None else repr(value)


# --------------------------------------------------------------------------- main

def report(root, out_dir):
  """Writes figures, evaluations.csv and table.md; returns a dict of what was written."""
  if not os.path.isdir(root):
    raise FileNotFoundError(f"--runs={root!r} is not a directory")
  os.makedirs(out_dir, exist_ok=True)
  runs, planned = find_runs(root)
  figures = draw_figures(runs, out_dir)
  num_rows = write_csv(runs, os.path.join(out_dir, "evaluations.csv"))
  rows = table_rows(runs)
  unfinished, missing = not_done(runs, planned, root)
  finished = sum(r.status == sweep_lib.FINISHED for r in runs)
  text = [f"# Results of the runs under {os.path.abspath(root)}", "",
          f"{len(runs)} run directories: {finished} finished, {len(unfinished)} unfinished; "
          f"{len(missing)} planned runs missing. Final values are over the finished runs: mean "
          "± sample standard deviation over seeds. The paper's numbers are for MNIST "
          "(CIFAR10 for E7) after 21,000 steps (SPEC.md); for other data or shorter "
          "schedules compare the direction (e.g. against the pixel-space probe), not the "
          "value.", "", markdown_table(rows), ""]
  text += ["## Unfinished runs", ""] + (unfinished or ["(none)"]) + [""]
  text += ["## Missing runs (planned by a sweep, no run directory)", ""] + (
      missing or ["(none)"]) + [""]
  text += ["## Figures", ""] + ([f"- {os.path.basename(p)}" for p in figures] or
                                ["(no run matches a figure of the paper)"]) + [""]
  with open(os.path.join(out_dir, "table.md"), "w") as f:
    f.write("\n".join(text))
  return {"runs": runs, "figures": figures, "rows": rows, "csv_rows": num_rows,
          "unfinished": unfinished, "missing": missing, "text": "\n".join(text)}


FLAGS = flags.FLAGS


def define_flags():
  """The command line's flags (defined only when run as a program: absl flags are global)."""
  flags.DEFINE_string("runs", None, "Folder holding run directories (e.g. a sweep folder).")
  flags.DEFINE_string("out", None, "Where to write the figures, evaluations.csv and table.md.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not FLAGS.runs or not FLAGS.out:
    print("error: --runs and --out are required", file=sys.stderr)
    return 2
  try:
    result = report(FLAGS.runs, FLAGS.out)
  except FileNotFoundError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(result["text"])
  print(f"wrote {len(result['figures'])} figure(s), evaluations.csv ({result['csv_rows']} "
        f"rows) and table.md to {FLAGS.out}")
  return 0


if __name__ == "__main__":
  define_flags()
  app.run(main)
