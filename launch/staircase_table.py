r"""Bias, variance and MSE of the staircase runs (Poole et al. 2019; Song & Ermon 2020).

    python -m launch.staircase_table RUNS_FOLDER [--wide] [--only=REGEX]

Reads every run directory below RUNS_FOLDER whose run.experiment is 'staircase' (through
`mi_repr_tf.rundir`; no TensorFlow) and prints one markdown row per (variant, estimator,
critic, stage): the per-step training-batch estimates (`step_estimates`) of the second half
of the stage, once the critic has had half a stage to adapt, pooled over seeds, against the
stage's true MI (`stage_true_mi`, recorded at the stage end):

    bias = mean(e) - I,   variance = mean((e - mean(e))^2),   MSE = mean((e - I)^2)
                                                                  = bias^2 + variance.

With --wide: one compact table per (variant, critic), a row per estimator and a column per
stage, each cell "bias / variance"; a cell pooled from fewer estimates than the table's
fullest (a run stopped early, e.g. on a non-finite loss) is marked with its count, and "-"
is a stage no run of that row completed. --only keeps the run directories whose name matches
REGEX (as the sweep's --only), e.g. --only='concat-seed0'.
"""

import argparse
import collections
import os
import re
import sys

import numpy as np

from mi_repr_tf import rundir

COLUMNS = ("variant", "estimator", "critic", "stage", "true MI", "bias", "variance", "MSE", "n")


def variant(config):
  """'cubic' or 'gaussian': which staircase a run's bindings describe."""
  return "cubic" if config.get("staircase.cubic") else "gaussian"


def second_half_estimates(records, steps_per_stage):
  """{stage: [estimates of the steps in the second half of that stage]} of one run.

  A record at step s with n `step_estimates` holds those of training steps s - n + 1 .. s;
  step t (1-based) belongs to stage (t - 1) // steps_per_stage at position (t - 1) %
  steps_per_stage, and is kept if 2 * position >= steps_per_stage.
  """
  by_stage = collections.defaultdict(list)
  for record in records:
    values = record.get("step_estimates") or []
    first = record["step"] - len(values) + 1
    for t, value in enumerate(values, start=first):
      stage, position = divmod(t - 1, steps_per_stage)
      if 2 * position >= steps_per_stage:
        by_stage[stage].append(float(value))
  return dict(by_stage)


def stage_true_mi(records):
  """{stage: true MI in nats} from the records at the stage ends."""
  return {r["stage"]: float(r["stage_true_mi"]) for r in records if "stage" in r}


def differing_settings(runs):
  """The bindings, other than seeds, execution settings and the table's own columns, whose
  values differ between `runs` (runs that differ in them must not be pooled).

  An estimator's own parameters (smile.tau, mine.momentum, ...) are compared between the
  runs of that estimator only: the other estimators' runs do not have them.
  """
  own = {"staircase.estimator", "staircase.critic", "staircase.cubic"}
  by_estimator = collections.defaultdict(list)
  for config, _ in runs:
    by_estimator[str(config.get("staircase.estimator"))].append(config)
  keys = {k for config, _ in runs for k in config
          if k not in own and not rundir.is_seed(k) and not rundir.is_execution_setting(k)}

  def differ(key, configs):
    return len({repr(c.get(key)) for c in configs}) > 1

  every_config = [config for config, _ in runs]
  differing = {k for k in keys
               if k.split(".", 1)[0] not in by_estimator and differ(k, every_config)}
  for name, configs in by_estimator.items():
    differing |= {k for k in keys if k.split(".", 1)[0] == name and differ(k, configs)}
  return sorted(differing)


def pool(runs):
  """{(variant, estimator, critic, stage): (true MI, [e] pooled over seeds)} of (config,
  records) pairs; a stage without its stage-end record is left out."""
  pooled = {}
  for config, records in runs:
    truth = stage_true_mi(records)
    halves = second_half_estimates(records, config["staircase.steps_per_stage"])
    for stage, values in halves.items():
      if stage not in truth:
        continue
      key = (variant(config), config.get("staircase.estimator"),
             config.get("staircase.critic"), stage)
      mi, pooled_values = pooled.setdefault(key, (truth[stage], []))
      if mi != truth[stage]:
        raise ValueError(f"runs of {key} disagree on the true MI: {mi} and {truth[stage]}")
      pooled_values.extend(values)
  return pooled


def statistics(true_mi, values):
  """(bias, variance, MSE) of estimates `values` of `true_mi` (variance with ddof 0)."""
  values = np.asarray(values, np.float64)
  return (float(values.mean() - true_mi), float(values.var()),
          float(np.mean((values - true_mi) ** 2)))


def rows(pooled):
  """Table rows, sorted by variant, estimator, critic and stage."""
  out = []
  for key in sorted(pooled, key=lambda k: tuple(str(p) for p in k[:3]) + (k[3],)):
    true_mi, values = pooled[key]
    out.append(key + (true_mi,) + statistics(true_mi, values) + (len(values),))
  return out


def markdown(table_rows):
  """A markdown table of `rows` output."""
  lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
  for row in table_rows:
    cells = [str(c) if isinstance(c, (str, int)) else f"{c:.3f}" for c in row]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def run_keys(runs):
  """{(variant, critic, estimator)} of (config, records) pairs, finished or not."""
  return {(variant(c), str(c.get("staircase.critic")), str(c.get("staircase.estimator")))
          for c, _ in runs}


def wide_markdown(table_rows, keys=()):
  """`rows` output as one table per (variant, critic): estimators x stages, cells
  "bias / variance" (3 significant digits). `keys` (`run_keys`) adds a row of "-" for an
  estimator whose runs completed no stage."""
  groups = collections.defaultdict(dict)
  for variant_, estimator, critic, stage, true_mi, bias, var, _, n in table_rows:
    groups[(variant_, critic)][(str(estimator), stage)] = (true_mi, bias, var, n)
  names = collections.defaultdict(set)
  for variant_, critic, estimator in keys:
    names[(variant_, critic)].add(estimator)
  blocks = []
  for (variant_, critic), cells in sorted(groups.items()):
    stages = sorted({stage for _, stage in cells})
    truths = {stage: mi for (_, stage), (mi, *_) in cells.items()}
    full = max(n for *_, n in cells.values())
    lines = [f"{variant_}, {critic} critic: bias / variance per stage (MSE = bias^2 + variance)",
             "",
             "| estimator | " + " | ".join(f"{truths[s]:g} nats" for s in stages) + " |",
             "|---|" + "---|" * len(stages)]
    for estimator in sorted({e for e, _ in cells} | names[(variant_, critic)]):
      row = []
      for stage in stages:
        if (estimator, stage) not in cells:
          row.append("-")
          continue
        _, bias, var, n = cells[(estimator, stage)]
        row.append(f"{bias:.3g} / {var:.3g}" + (f" (n={n})" if n < full else ""))
      lines.append(f"| {estimator} | " + " | ".join(row) + " |")
    blocks.append("\n".join(lines))
  return "\n\n".join(blocks)


def find_runs(folder, only=None):
  """(config, records) of every staircase run directory below `folder` whose name matches
  the regular expression `only` (re.search; None: all); an unreadable config is named on
  stderr and skipped. Runs that are not finished are named on stderr."""
  runs, unfinished = [], []
  for directory, _, files in sorted(os.walk(folder)):
    if rundir.RESULTS not in files:
      continue
    if only is not None and not re.search(only, os.path.basename(directory)):
      continue
    try:
      config = rundir.read_config(directory)
    except rundir.RunDirError as e:
      print(f"skipped: {e}", file=sys.stderr)
      continue
    if config.get("run.experiment") != "staircase":
      continue
    if not isinstance(config.get("staircase.steps_per_stage"), int):
      print(f"skipped: {directory} has no staircase.steps_per_stage", file=sys.stderr)
      continue
    runs.append((config, rundir.read_results(directory).records))
    if rundir.run_status(directory) != rundir.FINISHED:
      unfinished.append(os.path.basename(directory))
  if unfinished:
    print(f"note: {len(unfinished)} run(s) not finished (stopped, killed or still running); "
          f"their completed stages are included: {', '.join(unfinished)}", file=sys.stderr)
  return runs


def parse_args(argv):
  parser = argparse.ArgumentParser(prog="python -m launch.staircase_table",
                                   description="Bias, variance and MSE of staircase runs.")
  parser.add_argument("runs_folder", help="a folder of staircase run directories")
  parser.add_argument("--wide", action="store_true",
                      help="one compact table per variant and critic")
  parser.add_argument("--only", default=None,
                      help="only the run directories whose name matches this regex")
  args = parser.parse_args(argv)
  if not os.path.isdir(args.runs_folder):
    parser.error(f"{args.runs_folder} is not a folder")
  if args.only is not None:
    try:
      re.compile(args.only)
    except re.error as e:
      parser.error(f"--only={args.only!r} is not a regular expression ({e})")
  return args


def main(argv):
  try:
    args = parse_args(argv[1:])
  except SystemExit as e:  # argparse printed the usage and the error
    return e.code
  runs = find_runs(args.runs_folder, args.only)
  if not runs:
    print(f"no staircase runs below {args.runs_folder}"
          + (f" matching {args.only!r}" if args.only else ""), file=sys.stderr)
    return 1
  differing = differing_settings(runs)
  if differing:
    print(f"error: the staircase runs below {args.runs_folder} differ in {', '.join(differing)}; "
          "point at a folder of one study", file=sys.stderr)
    return 2
  table_rows = rows(pool(runs))
  print(wide_markdown(table_rows, run_keys(runs)) if args.wide else markdown(table_rows))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
