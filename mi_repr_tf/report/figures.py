"""Drawing the figure specs of `report.experiments` from the runs that supply them.

A figure is drawn from the runs whose `run.experiment_id` lists it (and that its `where`
keeps), once per dataset used. Each panel spec becomes one panel per value of its `per`
bindings found in those runs, and each panel has one line per configuration (runs that
differ only in seeds and execution settings), named by the bindings that tell the
configurations apart: nothing is hard-coded, so a new estimator, critic or encoder is drawn
without an edit here.

`draw_figures` returns what it drew ({file: drawing}, each panel with its lines as numbers
and its legend), so that tests and callers can check the figures without reading PNGs.
"""

import bisect
import collections
import math
import os
import re
import textwrap

import numpy as np

from mi_repr_tf.report import experiments as exp_lib
from mi_repr_tf.report import load

POOLED_FALLBACK = " (mean of per-run percentiles)"
LEGEND_WIDTH = 60  # characters per legend line; longer labels are wrapped
_STYLES = ("-", "--", ":", "-.")


# --------------------------------------------------------------------------- numbers


def summarize(runs, read):
  """Mean and sample std over `runs` of `read(record)` at each step: a line dict with
  'steps', 'mean', 'std' and 'n' (runs with a value at the step). `read` returns a number,
  None, or {step: number} for a record that covers several steps."""
  by_step = collections.defaultdict(list)
  for run in runs:
    for record in run.records:
      value = read(record)
      if isinstance(value, dict):
        for step, v in value.items():
          by_step[step].append(v)
      elif value is not None:
        by_step[record["step"]].append(value)
  steps = sorted(by_step)
  stats = [load.mean_std(by_step[s]) for s in steps]
  return {"steps": steps, "mean": [m for m, _ in stats], "std": [s for _, s in stats],
          "n": [len(by_step[s]) for s in steps]}


def _run_percentiles(record):
  """{percentile: value} of one record: from its raw values, else its stored percentiles."""
  raw = load.numbers(record.get(exp_lib.CONDITION_KEY))
  if raw is not None:
    return dict(zip(exp_lib.PERCENTILES, np.percentile(raw, exp_lib.PERCENTILES)))
  stored = load.numbers(record.get(exp_lib.PERCENTILES_KEY))
  if stored is None:
    return {}
  last = max(len(stored) - 1, 1)
  return {round(100 * i / last): float(v) for i, v in enumerate(stored)}


def condition_percentiles(runs):
  """The Jacobian's log condition numbers of one configuration, by step (Section 3.1).

  At each step the raw values of all runs are pooled and the percentiles 0, 20, ..., 100
  taken, as the paper does. If some record at a step has no raw values, the step falls back
  to the mean (and std) over runs of each run's percentiles.

  Returns:
    ({percentile: line dict}, whether any step fell back).
  """
  by_step = collections.defaultdict(list)
  for run in runs:
    for record in run.records:
      if exp_lib.CONDITION_KEY in record or exp_lib.PERCENTILES_KEY in record:
        by_step[record["step"]].append(record)
  lines, fallback = collections.defaultdict(lambda: collections.defaultdict(list)), False
  for step in sorted(by_step):
    raws = [load.numbers(r.get(exp_lib.CONDITION_KEY)) for r in by_step[step]]
    if all(raw is not None for raw in raws):
      pooled = np.percentile(np.concatenate(raws), exp_lib.PERCENTILES)
      values = {p: [float(v)] for p, v in zip(exp_lib.PERCENTILES, pooled)}
      count = len(raws)
    else:
      fallback = True
      values = collections.defaultdict(list)
      for record in by_step[step]:
        for p, v in _run_percentiles(record).items():
          values[p].append(v)
      count = None
    for p, vals in values.items():
      mean, std = load.mean_std(vals)
      for key, value in (("steps", step), ("mean", mean), ("std", std),
                         ("n", count or len(vals))):
        lines[p][key].append(value)
  return {p: dict(lines[p]) for p in sorted(lines)}, fallback


def smooth(values, window, stages=None):
  """Trailing moving average over `window` values, restarted where `stages` changes."""
  sums = np.concatenate([[0.0], np.cumsum(np.asarray(values, dtype=float))])
  result, segment = [], 0
  for i in range(len(values)):
    if stages is not None and i and stages[i] != stages[i - 1]:
      segment = i
    start = max(segment, i - window + 1)
    result.append(float((sums[i + 1] - sums[start]) / (i + 1 - start)))
  return result


def stage_values(steps, truth):
  """The true value in force at each of `steps`: that of the first record at or after it."""
  known = list(truth)
  return [truth[known[min(bisect.bisect_left(known, s), len(known) - 1)]] for s in steps]


def truth_by_step(runs, key):
  """{step: value} of a record key such as the true MI, from the first run that has it."""
  found = {}
  for run in runs:
    for record in run.records:
      value = load.number(record.get(key))
      if value is not None:
        found.setdefault(record["step"], value)
  return dict(sorted(found.items()))


# --------------------------------------------------------------------------- panels


def _allowed(panel, setting):
  for name, values in panel.only.items():
    if load.binding(setting, name) not in values:
      return False
  return not any(load.binding(setting, name) in values
                 for name, values in panel.exclude.items())


def expand(panel, runs):
  """[(value text, runs)]: one entry per combination of the `per` bindings found."""
  runs = [r for r in runs if _allowed(panel, r.setting)]
  if not panel.per:
    return [("", runs)] if runs else []
  combos = collections.defaultdict(list)
  for run in runs:
    combos[tuple(repr(load.binding(run.setting, p)) for p in panel.per)].append(run)
  entries = []
  for members in combos.values():
    values = {p: load.binding(members[0].setting, p) for p in panel.per}
    entries.append((exp_lib.rank(values, panel.per),
                    ", ".join(exp_lib.pretty(p, v) for p, v in values.items()), members))
  return [(text, members) for _, text, members in sorted(entries, key=lambda e: e[:2])]


def _not_invertible(runs):
  return sorted({rec["step"] for r in runs for rec in r.records
                 if rec.get(exp_lib.INVERTIBLE_KEY) is False})


def _series_lines(panel, series, group, base, value):
  line = summarize(group, series.read)
  if not line["steps"]:
    return None, None
  label = (base + series.suffix) if base else (series.name or panel.ylabel)
  line.update(series=series, group=base)
  if series.smooth:
    truth = truth_by_step(group, panel.truth) if panel.truth else {}
    line["mean"] = smooth(line["mean"], series.smooth,
                          stage_values(line["steps"], truth) if truth else None)
  if panel.not_invertible:
    line["not_invertible"] = _not_invertible(group)
  return label.replace("{value}", value), line


def panel_lines(figure, panel, runs, value, all_settings):
  """{label: line dict} of one panel: one line per configuration and series (or per
  percentile of the Jacobian's condition number)."""
  keys = load.label_keys(all_settings, figure.lines, panel.per, exp_lib.line_label)
  # A binding constant within this panel (an estimator's own parameters in its panel) does
  # not tell its lines apart: left out, unless the figure asks for it by name.
  keys = [k for k in keys if load.short(k) in figure.lines
          or len({repr(r.setting.get(k)) for r in runs}) > 1]
  groups = load.group_runs(runs).values()
  lines = collections.OrderedDict()
  for index, group in enumerate(sorted(groups, key=lambda g: exp_lib.rank(g[0].setting,
                                                                          keys))):
    base = exp_lib.line_label(group[0].setting, keys)
    if panel.percentiles:
      by_percentile, fallback = condition_percentiles(group)
      for p, line in by_percentile.items():
        label = f"{p}th percentile" + (f" ({base})" if base else "")
        line.update(group=base, percentile=p, style=_STYLES[index % len(_STYLES)],
                    pooled=not fallback)
        label += POOLED_FALLBACK if fallback else ""
        while label in lines:  # two configurations with one label: keep both lines
          label += "'"
        lines[label] = line
      continue
    for series in panel.series:
      label, line = _series_lines(panel, series, group, base, value)
      if line is not None:
        while label in lines:  # two values with one pretty name: keep both lines
          label += "'"
        lines[label] = line
  return lines


# --------------------------------------------------------------------------- drawing


def _plot_line(ax, right_ax, label, line, color):
  steps, mean = np.asarray(line["steps"]), np.asarray(line["mean"])
  series = line.get("series")
  target = right_ax if series is not None and series.right else ax
  style = line.get("style", series.style if series else "-")
  kw = dict(color=color, label=label, linestyle=style or "none",
            marker=series.marker if series else "o", markersize=2.5,
            linewidth=series.width if series else 1.5, alpha=series.alpha if series else 1.0)
  target.plot(steps, mean, **kw)
  if (series is None or series.band) and len(steps):
    std = np.asarray(line["std"])
    target.fill_between(steps, mean - std, mean + std, color=color, alpha=0.15, lw=0)
  marks = line.get("not_invertible", [])
  if marks:
    ax.plot(marks, np.interp(marks, steps, mean), linestyle="none", marker="x",
            color="red", markersize=9, markeredgewidth=2, label="not invertible")


def _draw_panel(ax, drawing, panel, colors, palette, cmap):
  right_ax = ax.twinx() if any(s.right for s in panel.series) else None
  for label, line in drawing["lines"].items():
    if "percentile" in line:
      color = cmap(line["percentile"] / 100)
    else:
      color = colors.setdefault(line["group"] or label, palette[len(colors) % len(palette)])
    _plot_line(ax, right_ax, label, line, color)
  if drawing["baseline"] is not None:
    ax.axhline(drawing["baseline"], color="gray", linestyle="--", label="pixels")
  truth = drawing["truth"]
  if truth["steps"]:
    if len(set(truth["values"])) == 1:
      ax.axhline(truth["values"][0], color="black", linestyle="--", label="true MI")
    else:
      ax.step(truth["steps"], truth["values"], where="pre", color="black", label="true MI")
      ax.set_ylim(-1.0, 1.3 * max(truth["values"]))  # as the papers: diverging bounds clip
  if not drawing["lines"]:
    ax.text(0.5, 0.5, "no data for this panel", ha="center", va="center",
            transform=ax.transAxes, color="gray")
  if panel.log_y:
    ax.set_yscale("log")
  ax.set_title(drawing["title"])
  ax.set_xlabel("Iteration")
  ax.set_ylabel(drawing["ylabel"])
  ax.grid(alpha=0.3)
  handles, labels = ax.get_legend_handles_labels()
  if right_ax is not None:
    right_ax.set_ylabel(drawing["right_label"])
    more = right_ax.get_legend_handles_labels()
    handles, labels = handles + more[0], labels + more[1]
  unique = dict(zip(labels, handles))  # "not invertible" once
  if unique:
    shown = [textwrap.fill(label, LEGEND_WIDTH, break_on_hyphens=False) for label in unique]
    if shown == list(unique):
      ax.legend(list(unique.values()), shown, fontsize=7, loc="best")
    else:  # long labels (many bindings differ): wrapped, below the axes, the data visible
      ax.legend(list(unique.values()), shown, fontsize=6, loc="upper center",
                bbox_to_anchor=(0.5, -0.22), frameon=False)
  drawing["legend"] = list(unique)


def layout(figure, runs):
  """The panels of `figure` for `runs`: a list of drawings (dicts) without the legend."""
  settings = [g[0].setting for g in load.group_runs(runs).values()]
  drawings = []
  for panel in figure.panels:
    for value, members in expand(panel, runs):
      lines = panel_lines(figure, panel, members, value, settings)
      if panel.optional and not lines:
        continue
      baselines = [r.baseline for r in members if r.baseline is not None]
      truth = truth_by_step(members, panel.truth) if panel.truth else {}
      drawings.append({
          "title": panel.title.replace("{value}", value),
          "ylabel": panel.ylabel.replace("{value}", value),
          "right_label": panel.right_label.replace("{value}", value),
          "lines": lines, "panel": panel, "legend": [],
          "baseline": float(np.mean(baselines)) if panel.baseline and baselines else None,
          "truth": {"steps": list(truth), "values": list(truth.values())}})
  return drawings


def caption(figure, runs):
  """The figure's title: its caption, the dataset, and the seeds per line."""
  datasets = ", ".join(sorted({r.dataset for r in runs if r.dataset}))
  seeds = sorted({len(g) for g in load.group_runs(runs).values()})
  return (f"{figure.caption}\n{datasets + '; ' if datasets else ''}mean ± std over "
          f"{'/'.join(map(str, seeds))} seed(s) per line")


def draw_figure(figure, runs, path):
  """Draws `figure` from `runs` into `path`; returns the drawing, or None if no panel has
  data."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  drawings = layout(figure, runs)
  if not drawings:
    return None
  rows = min(figure.rows, len(drawings))
  cols = math.ceil(len(drawings) / rows)
  # Room below the axes for wrapped legends: about 0.13 inch per legend line.
  legend_lines = max(sum(math.ceil(len(label) / LEGEND_WIDTH) for label in d["lines"])
                     if any(len(label) > LEGEND_WIDTH for label in d["lines"]) else 0
                     for d in drawings)
  height = 3.9 + (0.6 + 0.13 * legend_lines if legend_lines else 0.0)
  fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, height * rows), squeeze=False)
  colors, palette = {}, plt.rcParams["axes.prop_cycle"].by_key()["color"]
  for k, (ax, drawing) in enumerate(zip(axes.flat, drawings)):
    _draw_panel(ax, drawing, drawing["panel"], colors, palette, plt.get_cmap("viridis"))
    if len(drawings) > 1:
      ax.set_title(f"({chr(ord('a') + k)}) {drawing['title']}")
  for ax in list(axes.flat)[len(drawings):]:
    ax.set_visible(False)
  text = caption(figure, runs)
  fig.suptitle(text, fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return {"file": path, "caption": text, "panels": drawings}


def figure_runs(runs):
  """[(figure, runs)] for every figure of the experiment table that some runs supply."""
  chosen = []
  for experiment_id, entry in exp_lib.EXPERIMENTS.items():
    for figure in entry.figures:
      members = [r for r in runs if r.experiment_id == experiment_id and r.records
                 and (figure.where is None or figure.where(r.setting))]
      if members:
        chosen.append((figure, members))
  return chosen


def draw_figures(runs, out_dir):
  """Draws every figure some runs supply, one file per dataset used if several.

  Returns:
    {file path: drawing}, a drawing being {'file', 'caption', 'panels': [{'title',
    'ylabel', 'lines': {label: {'steps', 'mean', 'std', 'n', ...}}, 'legend', ...}]}.
  """
  results = {}
  for figure, members in figure_runs(runs):
    by_dataset = collections.defaultdict(list)
    for run in members:
      by_dataset[run.dataset].append(run)
    for dataset, dataset_runs in sorted(by_dataset.items()):
      name = figure.file
      if len(by_dataset) > 1:
        suffix = re.sub(r"[^\w.-]", "_", dataset) or "unknown"
        name = name.replace(".png", f"_{suffix}.png")
      drawing = draw_figure(figure, dataset_runs, os.path.join(out_dir, name))
      if drawing is not None:
        results[drawing["file"]] = drawing
  return results
