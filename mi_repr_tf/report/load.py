"""Reading the runs under a folder for the report: run directories and sweep manifests.

Every folder below the root that holds an operative config is a run directory (see
`rundir`); every `sweep.json` names the runs a sweep planned. Nothing here draws or writes.

A malformed input never stops the report: a run whose config, baseline.json or dataset.json
cannot be read is skipped, and so is a manifest that is not valid; each is named with its
reason in `Loaded.skipped`. Unusable lines of a run's results are named in
`Loaded.warnings` and the run keeps its good records.

Runs are grouped into configurations by their bindings without execution-only settings and
seeds (`rundir.is_execution_setting`, `rundir.is_seed`), and by the dataset actually used.
"""

import collections
import dataclasses
import math
import os

import numpy as np

from mi_repr_tf import rundir

MANIFEST = "sweep.json"
LOGS = "logs"
NO_ID = "(none)"  # the experiment id of a run whose config binds no run.experiment_id


@dataclasses.dataclass
class Run:
  """One run directory as the report sees it.

  Attributes:
    name: the path relative to the report's root.
    path: the run directory.
    bindings: every binding of its operative config.
    records: its usable evaluation records, by step.
    status: rundir.FINISHED, INTERRUPTED or NEW.
    baseline: the pixel-space probe accuracy (baseline.json), or None.
    dataset: the dataset used: dataset.json's name, else the config's dataset.name.
  """
  name: str
  path: str
  bindings: dict
  records: list
  status: str = rundir.INTERRUPTED
  baseline: float = None
  dataset: str = ""

  def __post_init__(self):
    self.setting = {k: v for k, v in self.bindings.items()
                    if not rundir.is_execution_setting(k) and not rundir.is_seed(k)}
    self.group = (self.dataset,) + tuple(sorted((k, repr(v)) for k, v in self.setting.items()))

  @property
  def experiment_id(self):
    value = self.bindings.get("run.experiment_id")
    return str(value) if value is not None else NO_ID

  @property
  def last_step(self):
    return self.records[-1]["step"] if self.records else None


@dataclasses.dataclass
class Loaded:
  """What `find_runs` found.

  Attributes:
    runs: the usable runs, by name.
    skipped: [(name, reason)] of run directories and manifests that were not usable.
    warnings: [(name, text)] about runs that are used (e.g. unusable results lines).
    planned: {run name: log path} of the runs named by sweep manifests.
  """
  runs: list
  skipped: list
  warnings: list
  planned: dict


# --------------------------------------------------------------------------- reading


def _read_manifest(folder, root):
  """{run name relative to root: log path} of the manifest in `folder` (RunDirError if bad)."""
  manifest = rundir.read_json(folder, MANIFEST)
  runs = manifest.get("runs") if isinstance(manifest, dict) else None
  if not isinstance(runs, (dict, list)):
    raise rundir.RunDirError(f"{os.path.join(folder, MANIFEST)} has no 'runs' object")
  planned = {}
  for name in runs:
    entry = runs[name] if isinstance(runs, dict) else None
    if not isinstance(name, str) or not name:
      raise rundir.RunDirError(f"{os.path.join(folder, MANIFEST)} names a run {name!r}")
    log = entry.get("log") if isinstance(entry, dict) else None
    log = os.path.join(folder, log or os.path.join(LOGS, name + ".log"))
    planned[os.path.relpath(os.path.join(folder, name), root)] = log
  return planned


def _object(workdir, name):
  """The JSON object in `name` of a run directory, or None; RunDirError otherwise."""
  value = rundir.read_json(workdir, name)
  if value is not None and not isinstance(value, dict):
    raise rundir.RunDirError(f"{os.path.join(workdir, name)} is not a JSON object")
  return value


def read_run(path, name):
  """(Run, warnings) of one run directory; RunDirError or OSError if it is unusable."""
  bindings = rundir.read_config(path)
  baseline = _object(path, rundir.BASELINE) or {}
  dataset = _object(path, rundir.DATASET) or {}
  results = rundir.read_results(path)
  warnings = [f"{rundir.RESULTS} line {line}: {reason} (line ignored)"
              for line, reason in results.problems]
  if "run.experiment_id" not in bindings:
    warnings.append("the config binds no run.experiment_id: the run is in no paper figure")
  used = dataset.get("name")
  if not isinstance(used, str) or not used:
    used = str(bindings.get("dataset.name", ""))
  pixels = number(baseline.get("pixel_accuracy"))
  run = Run(name=name, path=path, bindings=bindings, records=results.records,
            status=rundir.run_status(path), baseline=pixels, dataset=used)
  return run, warnings


def find_runs(root):
  """Every run directory and sweep manifest below `root`, as a `Loaded`."""
  loaded = Loaded([], [], [], {})
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    name = os.path.relpath(dirpath, root)
    if MANIFEST in filenames:
      try:
        loaded.planned.update(_read_manifest(dirpath, root))
      except (rundir.RunDirError, OSError) as e:
        loaded.skipped.append((os.path.join(name, MANIFEST), f"manifest not used: {e}"))
    if rundir.CONFIG not in filenames:
      continue
    dirnames[:] = []  # a run directory: its subfolders are its own
    try:
      run, warnings = read_run(dirpath, name)
    except (rundir.RunDirError, OSError) as e:
      loaded.skipped.append((name, str(e)))
      continue
    loaded.runs.append(run)
    loaded.warnings.extend((name, w) for w in warnings)
  return loaded


# --------------------------------------------------------------------------- values


def number(value):
  """`value` as a finite float, or None if it is not a finite number."""
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    return None
  return float(value) if math.isfinite(value) else None


def numbers(value):
  """A list of finite numbers as a float array, or None if `value` is not one."""
  if not isinstance(value, (list, tuple)) or not value:
    return None
  values = [number(v) for v in value]
  return None if any(v is None for v in values) else np.asarray(values, dtype=float)


def short(key):
  """The last part of a binding's key: 'train.critic' -> 'critic'."""
  return key.rsplit(".", 1)[-1]


def binding(setting, name, default=None):
  """The value of the binding whose last part is `name` ('estimator' matches both
  train.estimator and gaussian.estimator), or `default`."""
  for key in sorted(setting):
    if short(key) == name:
      return setting[key]
  return default


def mean_std(values):
  """(mean, sample standard deviation) of `values`; the deviation of one value is 0."""
  values = np.asarray(values, dtype=float)
  std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
  return float(np.mean(values)), std


def group_runs(runs):
  """{group: [runs]}: runs that differ only in seeds and execution settings, in name order."""
  groups = collections.OrderedDict()
  for run in sorted(runs, key=lambda r: r.name):
    groups.setdefault(run.group, []).append(run)
  return groups


def varying_keys(settings):
  """The binding keys whose values differ between `settings` (a list of dicts)."""
  keys = sorted({k for s in settings for k in s})
  return [k for k in keys if len({repr(s.get(k)) for s in settings}) > 1]


def label_keys(settings, preferred=(), exclude=(), label=None):
  """The keys that tell `settings` apart, those whose last part is in `preferred` first.

  Keys that only some settings bind (concat.hidden_units when the critic differs) are left
  out unless the labels would collide without them; keys whose last part is in `exclude`
  (what a panel is already split by) are left out.

  Args:
    settings: one dict of bindings per configuration.
    preferred: short names that come first, in this order.
    exclude: short names never used.
    label: (setting, keys) -> text, to check that the labels are distinct.
  """
  varying = [k for k in varying_keys(settings) if short(k) not in exclude]
  common = [k for k in varying if all(k in s for s in settings)]
  distinct = len({tuple(sorted((k, repr(v)) for k, v in s.items() if short(k) not in exclude))
                  for s in settings})
  for keys in (common, varying):
    first = [k for p in preferred for k in keys if short(k) == p]
    keys = first + [k for k in keys if k not in first]
    if label is None or len({label(s, keys) for s in settings}) == distinct:
      return keys
  return keys


def flatten(record, prefix=""):
  """A record as one level: nested dicts become 'a.b' keys; lists stay values."""
  flat = {}
  for key, value in record.items():
    if isinstance(value, dict):
      flat.update(flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat
