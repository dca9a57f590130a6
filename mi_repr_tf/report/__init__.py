r"""The paper's figures, a CSV and a table of results, from the runs under a folder.

    python -m mi_repr_tf.report --runs=runs/critic_study --out=report/critic_study

reads every run directory below --runs (through `rundir`) and writes to --out:

    figure1ab.png ... figure9.png, staircase.png
                       the figures the runs supply (`experiments.EXPERIMENTS`, chosen by
                       each run's `run.experiment_id`): mean and standard deviation over
                       seeds against the training step, one line per configuration found
    evaluations.csv    every evaluation of every run, with the run's bindings
    table.md           final accuracy and test bound per configuration (mean ± std over
                       seeds) next to the paper's numbers, then the unfinished, missing
                       (planned by a sweep.json, no run directory) and skipped runs

Modules: `load` (run directories -> runs), `experiments` (the table of experiment ids,
their figure specs and the paper's numbers), `figures` (specs -> PNG), `table` (table.md,
evaluations.csv). No TensorFlow is imported.
"""

import dataclasses
import os

from mi_repr_tf.report import figures as figures_lib
from mi_repr_tf.report import load
from mi_repr_tf.report import table as table_lib


@dataclasses.dataclass
class Report:
  """What `report` wrote.

  Attributes:
    loaded: the runs, skipped runs, warnings and planned runs (`load.Loaded`).
    figures: {file path: drawing} (see `figures.draw_figures`).
    rows: the table's rows (dicts, see `table.row`).
    csv_rows: the number of rows of evaluations.csv.
    text: the text of table.md.
  """
  loaded: load.Loaded
  figures: dict
  rows: list
  csv_rows: int
  text: str


def report(root, out_dir):
  """Writes the figures, evaluations.csv and table.md of the runs under `root`.

  Args:
    root: a folder holding run directories (and sweep.json manifests).
    out_dir: where to write; created if needed.

  Returns:
    A `Report`.

  Raises:
    NotADirectoryError: `root` is not a directory.
  """
  if not os.path.isdir(root):
    raise NotADirectoryError(f"--runs={root!r} is not a directory")
  os.makedirs(out_dir, exist_ok=True)
  loaded = load.find_runs(root)
  drawn = figures_lib.draw_figures(loaded.runs, out_dir)
  csv_rows = table_lib.write_csv(loaded.runs, os.path.join(out_dir, "evaluations.csv"))
  rows = table_lib.table_rows(loaded.runs)
  text = table_lib.markdown(root, loaded, rows, list(drawn))
  with open(os.path.join(out_dir, "table.md"), "w") as f:
    f.write(text)
  return Report(loaded, drawn, rows, csv_rows, text)
