"""Sweeps: the paper's studies as lists of runs, in the style of disentanglement_lib.

A sweep is a list of dicts, each the settings of one run: gin bindings ("train.seed": 3) and
the pseudo-key `gin_file` (a gin file, relative to the repository root). It is built from

    sweep(key, values)   one run per value               [{key: v} for v in values]
    fixed(key, value)    one run                          [{key: value}]
    product(sweeps)      every combination                merged dicts; the last varies fastest
    zipit(sweeps)        element-wise, equal lengths      merged dicts
    chainit(sweeps)      one after the other              concatenation

and is indexable by run number. `study(name, num_seeds)` returns the runs of a named study
(STUDIES below: the paper's experiments E1-E7 of SPEC.md), each a `Run` with a readable,
deterministic name (`critic_bilinear-nwj-seed3`) that is its workdir under the sweep folder.

Each run is an ordinary command-line run (`python -m mi_repr_tf.train ... --workdir=DIR`),
so a sweep is resumable the way a run is: a finished run prints "already finished", an
interrupted one resumes from its last checkpoint (`rundir.run_status` tells which is which
without starting TensorFlow). The launcher, which executes studies, is `launch/sweep.py`.
"""

import dataclasses
import itertools
import os
import re

from mi_repr_tf.errors import ConfigError

GIN_FILE = "gin_file"
SEED = "run.seed"  # the seed of every experiment
NUM_SEEDS = 20  # the paper: every curve is a mean over 20 runs
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))



# --------------------------------------------------------------------------- building sweeps

def sweep(key, values):
  """One run per value of `key`."""
  return [{key: v} for v in values]


def fixed(key, value):
  """A single run setting `key` to `value` (combine it with `product`)."""
  return [{key: value}]


def _merge(dicts):
  merged = {}
  for d in dicts:
    for key, value in d.items():
      if key in merged and merged[key] != value:
        raise ValueError(f"{key!r} is set twice in one run: {merged[key]!r} and {value!r}")
      merged[key] = value
  return merged


def product(sweeps):
  """Every combination of one run from each sweep; the last sweep varies fastest."""
  return [_merge(combo) for combo in itertools.product(*sweeps)]


def zipit(sweeps):
  """The i-th runs of all sweeps merged into one; the sweeps must have equal lengths."""
  lengths = {len(s) for s in sweeps}
  if len(lengths) > 1:
    raise ValueError(f"zipit needs sweeps of equal length, got lengths {sorted(lengths)}")
  return [_merge(combo) for combo in zip(*sweeps)]


def chainit(sweeps):
  """The runs of every sweep, one sweep after the other."""
  return [dict(run) for s in sweeps for run in s]


def gin_literal(value):
  """A Python value as gin source text ('nce' -> "'nce'", 2.0 -> '2.0', None -> 'None')."""
  if isinstance(value, (bool, int, float, str, type(None), list, tuple, dict)):
    return repr(value)
  raise TypeError(f"cannot write {value!r} ({type(value).__name__}) as a gin value")


# --------------------------------------------------------------------------- runs

@dataclasses.dataclass(frozen=True)
class Run:
  """One run of a sweep: its workdir name, gin files and bindings ('key = value' strings)."""
  name: str
  gin_files: tuple
  bindings: tuple
  settings: dict = dataclasses.field(compare=False, hash=False, default_factory=dict)

  def train_args(self, workdir, repo=REPO):
    """Arguments of `python -m mi_repr_tf.train` for this run; gin files relative to `repo`
    are made absolute, so the command works from any directory."""
    files = [f if os.path.isabs(f) else os.path.join(repo, f) for f in self.gin_files]
    return ([f"--gin_file={f}" for f in files] + [f"--gin_param={b}" for b in self.bindings]
            + [f"--workdir={workdir}"])

  def to_json(self):
    return {"name": self.name, "gin_files": list(self.gin_files),
            "bindings": list(self.bindings)}


def _name_part(key, value):
  if key == GIN_FILE:
    files = value if isinstance(value, (list, tuple)) else [value]
    return "+".join(os.path.splitext(os.path.basename(f))[0] for f in files)
  short = key.rsplit(".", 1)[-1]
  if short == "seed":
    return f"seed{value}"
  if short == "target":
    return "max" if value is None else f"t{value:g}"
  if short == "iid":
    return "iid" if value else "noniid"
  if isinstance(value, str):
    return value
  if isinstance(value, float):
    return f"{short}{value:g}"
  return f"{short}{value}"


def run_name(settings, varying):
  """Readable name: the gin file, the settings that vary across the study, and the seed."""
  parts = [_name_part(k, v) for k, v in settings.items()
           if k in varying or k == GIN_FILE or k.rsplit(".", 1)[-1] == "seed"]
  name = "-".join(parts) or "run"
  return re.sub(r"[^A-Za-z0-9_.+=-]", "_", name)


def make_runs(settings_list, extra_bindings=()):
  """`Run`s from a sweep (a list of settings dicts) plus bindings shared by every run.

  The shared bindings (e.g. a shortened schedule or another dataset) come last, so they
  override the gin files; they are part of each run's command, hence of its operative config.
  """
  keys = {k for s in settings_list for k in s}
  varying = {k for k in keys
             if len({repr(s.get(k)) for s in settings_list}) > 1}
  runs, seen = [], {}
  for settings in settings_list:
    files = settings.get(GIN_FILE, ())
    files = tuple(files) if isinstance(files, (list, tuple)) else (files,)
    bindings = tuple(f"{k}={gin_literal(v)}" for k, v in settings.items() if k != GIN_FILE)
    run = Run(run_name(settings, varying), files, bindings + tuple(extra_bindings), settings)
    if run.name in seen:
      raise ValueError(f"two runs of the sweep have the same name {run.name!r}: "
                       f"{seen[run.name]} and {settings}")
    seen[run.name] = settings
    runs.append(run)
  return runs


# --------------------------------------------------------------------------- the studies

ESTIMATORS = ("nce", "nwj")
CRITIC_GIN = ("gin/critic_bilinear.gin", "gin/critic_separable.gin", "gin/critic_mlp.gin")
TARGET_GIN = ("gin/target_mlp.gin", "gin/target_convnet.gin")
TARGETS = (2.0, 4.0)


def _cifar10(paths):
  return tuple(p.replace("gin/", "gin/cifar10_") for p in paths)


def _critic_study(gin_files):
  def runs(seeds, estimators=ESTIMATORS):
    return product([sweep(GIN_FILE, gin_files), sweep("train.estimator", estimators),
                    sweep(SEED, seeds)])
  return runs


def _target_study(gin_files):
  def runs(seeds, estimators=ESTIMATORS):
    return product([sweep(GIN_FILE, gin_files), sweep("train.target", TARGETS),
                    sweep("train.estimator", estimators), sweep(SEED, seeds)])
  return runs


def _one_gin_file(path, estimator_key="train.estimator", before=()):
  """Runs of one gin file: `before` sweeps x estimators (if `estimator_key`) x seeds."""
  def runs(seeds, estimators=ESTIMATORS):
    parts = [fixed(GIN_FILE, path), *before, sweep(estimator_key, estimators)]
    return product(parts + [sweep(SEED, seeds)])

  def runs_without_estimators(seeds):  # no estimator to sweep (e.g. the adversarial study)
    return product([fixed(GIN_FILE, path), *before, sweep(SEED, seeds)])
  return runs if estimator_key else runs_without_estimators


@dataclasses.dataclass(frozen=True)
class Study:
  experiment: str
  figures: str
  runs: object  # (seeds, estimators) -> list of settings dicts


STUDIES = {
    # E4, Section 3.2: bilinear, separable and concat ("MLP") critics.
    "critic_study": Study("E4", "Figures 3 and 6", _critic_study(CRITIC_GIN)),
    # E5, Section 3.3: MLP vs ConvNet encoders trained to a target bound t in {2, 4}.
    "target_study": Study("E5", "Figures 4a, 4b and 7", _target_study(TARGET_GIN)),
    # E1, E2, E3, E6: one gin file each (see the experiments' modules).
    "invertible": Study("E1", "Figures 1a and 1b", _one_gin_file("gin/invertible_realnvp.gin")),
    "adversarial": Study("E2", "Figure 1c", _one_gin_file("gin/adversarial_realnvp.gin", None)),
    "adversarial_notebook": Study("E2", "Figure 1c (the notebook's setting)", _one_gin_file(
        "gin/adversarial_realnvp_notebook.gin", None)),
    "noninvertible": Study("E3", "Figures 2 and 5", _one_gin_file("gin/noninvertible_mlp.gin")),
    # E6, Section 4: non-i.i.d. and i.i.d. batches of the Gaussian pair.
    "noniid_gaussian": Study("E6", "Figure 4c", _one_gin_file(
        "gin/noniid_gaussian.gin", "gaussian.estimator", [sweep("gaussian.iid", [False, True])])),
    # E7, Appendix G: the E4 and E5 studies on CIFAR10 halves (lr 1e-5, 3x the steps).
    "critic_study_cifar10": Study("E7", "Figure 8", _critic_study(_cifar10(CRITIC_GIN))),
    "target_study_cifar10": Study("E7", "Figure 9", _target_study(_cifar10(TARGET_GIN))),
    # Poole et al. 2019 / Song & Ermon 2020: the staircase benchmark, Gaussian and cubic.
    # Every registered estimator by default: a new one joins the benchmark when defined.
    "staircase": Study("staircase", "Staircase figure", lambda seeds, estimators=None: product([
        sweep(GIN_FILE, ("gin/staircase_gaussian.gin", "gin/staircase_cubic.gin")),
        sweep("staircase.estimator", estimators or registered_estimators()),
        sweep("staircase.critic", ("separable", "concat")), sweep(SEED, seeds)])),
}


def registered_estimators():
  """Every registered estimator: the paper's two first, then the others by name."""
  from mi_repr_tf import registry  # pylint: disable=g-import-not-at-top
  names = registry.names("estimator")
  return tuple(n for n in ESTIMATORS if n in names) + tuple(
      n for n in names if n not in ESTIMATORS)


def study(name, num_seeds=NUM_SEEDS, extra_bindings=(), estimators=None):
  """The runs of the named study with seeds 0 .. num_seeds - 1 (and, for studies that sweep
  estimators, the registered estimators `estimators` instead of the study's default: the
  paper's two, or for 'staircase' every registered estimator)."""
  if name not in STUDIES:
    raise ConfigError(f"--sweep={name!r} is not a known study; choose one of: "
                      + ", ".join(sorted(STUDIES)))
  if num_seeds < 1:
    raise ConfigError(f"--seeds={num_seeds} is not valid; it must be >= 1")
  seeds = list(range(num_seeds))
  if estimators:
    from mi_repr_tf import registry  # pylint: disable=g-import-not-at-top
    for estimator in estimators:
      registry.get("estimator", estimator, "--estimators")
    try:
      return make_runs(STUDIES[name].runs(seeds, tuple(estimators)), extra_bindings)
    except TypeError:
      raise ConfigError(f"--estimators: the study {name!r} does not sweep estimators") from None
  return make_runs(STUDIES[name].runs(seeds), extra_bindings)


def check_gin_files(runs, repo=REPO):
  """Raises ConfigError naming the gin files of `runs` that do not exist."""
  missing = sorted({f for r in runs for f in r.gin_files
                    if not os.path.isfile(f if os.path.isabs(f) else os.path.join(repo, f))})
  if missing:
    raise ConfigError("gin file(s) missing: " + ", ".join(missing)
                      + " (the experiment that provides them is not in this checkout)")
