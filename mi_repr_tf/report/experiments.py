r"""The one table of experiments: for each experiment id, its figures and the paper's numbers.

A run says which experiment it belongs to by binding `run.experiment_id` (E1-E7 of SPEC.md,
or a new study's name such as 'staircase'); `EXPERIMENTS` maps that id to the figures its runs
are drawn in and to the text the paper reports for them. A run whose id is not here is still
in evaluations.csv and table.md, just in no figure.

Adding a figure is one `Figure` in its experiment's entry: a file name, a caption and its
panels. A panel says what it reads from the records (`Series`), which bindings split it into
one panel per value found (`per`, matched by the last part of a binding's key, so 'estimator'
is train.estimator in two-view runs and gaussian.estimator in Gaussian ones), and what it
draws besides (pixel baseline, true MI, condition-number percentiles, non-invertible marks).
Within a panel there is one line per configuration found; the figure engine is
`report.figures`.
"""

import dataclasses

from mi_repr_tf.report import load

I_NCE, I_NWJ = r"$I_{\mathrm{NCE}}$", r"$I_{\mathrm{NWJ}}$"
I_EST = r"$I_{\mathrm{EST}}$"

# The paper's names for binding values, by the last part of the binding's key; the order is
# the order of lines and panels. Any other value is named by itself.
PRETTY = {
    "critic": {"inner_product": "inner product", "bilinear": "bilinear",
               "separable": "separable", "concat": "MLP"},
    "encoder": {"mlp": "MLP", "convnet": "ConvNet", "mlp_skip": "MLP with skips",
                "realnvp": "RealNVP"},
    "estimator": {"nce": I_NCE, "nwj": I_NWJ},
    "iid": {True: "i.i.d.", False: "non-i.i.d."},
    "cubic": {False: "Gaussian", True: "cubic"},  # the staircase's two variants
}

# Record keys (results.jsonl) that the figures and the table read.
ACCURACY_KEY = "accuracy"  # the linear probe's test accuracy
BOUND_KEYS = ("test_bound", "estimate")  # the test bound (two-view), the estimate (Gaussian)
NOTEBOOK_KEY = "notebook_bound"  # the notebook's quantity: mean over 20 training batches
GAP_KEY = "test_target_gap"  # Section 3.3: mean over test batches of |I_b - t|
CONDITION_KEY = "jacobian_log_condition_numbers"  # the raw values of one evaluation
PERCENTILES_KEY = "jacobian_log_condition_percentiles"  # a run's percentiles 0, 20, ..., 100
PERCENTILES = (0, 20, 40, 60, 80, 100)
INVERTIBLE_KEY = "invertible"
TRUE_MI_KEY = "true_mi"
STEP_ESTIMATES_KEY = "step_estimates"  # staircase: each training step's estimate since the
                                       # previous record, the last one at the record's step


def pretty(name, value):
  """The legend text of a binding value; `name` is the last part of the binding's key."""
  names = PRETTY.get(name)
  if names is not None:
    try:
      return names.get(value, str(value))
    except TypeError:  # an unhashable value (a list)
      return str(value)
  if name == "target":
    return f"t={value:g}" if load.number(value) is not None else f"t={value}"
  return f"{name}={value}"


def line_label(setting, keys):
  """A legend label: the pretty values of `keys` in `setting`."""
  return ", ".join(pretty(load.short(k), setting[k]) for k in keys if k in setting)


def plain_label(setting, keys):
  """A table label: 'key=value' for `keys` (short keys where they are unambiguous)."""
  shorts = [load.short(k) for k in keys]
  parts = []
  for key in keys:
    if key not in setting:
      continue
    value, name = setting[key], load.short(key)
    alias = " (MLP)" if name == "critic" and value == "concat" else ""  # the paper's name
    parts.append(f"{name if shorts.count(name) == 1 else key}={value}{alias}")
  return ", ".join(parts)


def rank(setting, keys):
  """Sort key of a configuration: the paper's order of known values, then by value."""
  result = []
  for key in keys:
    order = list(PRETTY.get(load.short(key), {}))
    value = setting.get(key)
    known = order.index(value) if value in order else len(order)
    num = load.number(value)
    result.append((known, value is not None, num is None, num or 0.0, repr(value)))
  return result


def metric(*keys):
  """A reader of one number from a record: the first of `keys` holding a finite number."""
  def read(record):
    for key in keys:
      value = load.number(record.get(key))
      if value is not None:
        return value
    return None
  read.keys = keys
  return read


ACCURACY = metric(ACCURACY_KEY)
BOUND = metric(*BOUND_KEYS)
NOTEBOOK = metric(NOTEBOOK_KEY)
TARGET_GAP = metric(GAP_KEY)
RECONSTRUCTION = metric("reconstruction_error")
MIN_SCALE = metric("min_scale")
ESTIMATE = metric("estimate")
STAGE_ESTIMATE = metric("stage_estimate")


def step_estimates(record):
  """{training step: estimate} of the steps a record covers (`step_estimates`), or, if it
  has none, its mean estimate (`estimate`) at its own step."""
  values = load.numbers(record.get(STEP_ESTIMATES_KEY))
  if values is None:
    return ESTIMATE(record)
  first = record["step"] - len(values) + 1
  return {first + i: float(v) for i, v in enumerate(values)}


# --------------------------------------------------------------------------- figure specs


@dataclasses.dataclass
class Series:
  """One line per configuration in a panel: mean and std over seeds of `read` by step.

  Attributes:
    read: record -> float, None, or {step: float} (a record covering several steps).
    name: the label when the panel has a single configuration ('{value}': the panel's value).
    suffix: appended to the configuration's label otherwise.
    style, width, alpha, marker: how the line is drawn ('' style: markers only).
    right: drawn on a right-hand axis.
    band: shade mean ± std.
    smooth: a trailing moving average over this many points, restarted where the panel's
      true MI changes (0: none).
  """
  read: object
  name: str = ""
  suffix: str = ""
  style: str = "-"
  width: float = 1.5
  alpha: float = 1.0
  marker: str = "o"
  right: bool = False
  band: bool = True
  smooth: int = 0


@dataclasses.dataclass
class Panel:
  """A subplot, repeated for every combination of the `per` bindings found in the runs.

  Attributes:
    title, ylabel: text; '{value}' becomes the panel's value of `per` (e.g. I_NCE).
    series: what each configuration draws.
    per: last parts of binding keys that split the panel (e.g. ('estimator',)).
    only, exclude: {last part of a key: values}: keep only / leave out these values.
    baseline: the pixel-space probe (baseline.json) as a dashed line.
    truth: a record key drawn as a black step line, e.g. the true MI.
    percentiles: instead of `series`, the Jacobian's log condition numbers, one line per
      percentile, pooled over the runs of a configuration (Section 3.1).
    not_invertible: a red 'x' at the points where a run records invertible = False.
    optional: left out when no run has data for it.
    right_label: the right-hand axis label; log_y: a logarithmic y axis.
  """
  title: str
  ylabel: str
  series: tuple = ()
  per: tuple = ()
  only: dict = dataclasses.field(default_factory=dict)
  exclude: dict = dataclasses.field(default_factory=dict)
  baseline: bool = False
  truth: str = None
  percentiles: bool = False
  not_invertible: bool = False
  optional: bool = False
  right_label: str = ""
  log_y: bool = False


@dataclasses.dataclass
class Figure:
  """A PNG file (one per dataset when the runs used several).

  Attributes:
    file: its name; caption: its title (the dataset and seeds are added).
    panels: its `Panel`s, laid out in `rows` rows.
    where: setting -> bool, to pick among the experiment's runs (None: all of them).
    lines: last parts of binding keys that name the lines first (e.g. ('critic',)).
  """
  file: str
  caption: str
  panels: list
  where: object = None
  lines: tuple = ()
  rows: int = 1


@dataclasses.dataclass
class Experiment:
  """An experiment id's entry: a title, its figures, and reference(setting) -> (paper's
  accuracy text, paper's bound text)."""
  title: str
  figures: list
  reference: object = None


def _accuracy(**kw):
  return Panel("{value}", "Test accuracy", (Series(ACCURACY, name="Test accuracy"),),
               per=("estimator",), baseline=True, **kw)


def _bound(**kw):
  return Panel("{value}: test bound", "Test {value}", (Series(BOUND, name="Test {value}"),),
               per=("estimator",), **kw)


def _twin():
  right = Series(BOUND, name="Test {value}", suffix=": test {value}", style=":", right=True)
  return Panel("{value}", "Test accuracy", (Series(ACCURACY, name="Test accuracy"), right),
               per=("estimator",), baseline=True, right_label="Test {value}")


def _gap():
  return Panel("{value}: test loss", r"Test loss $|I_{\mathrm{EST}} - t|$",
               (Series(TARGET_GAP, name="test loss"),), per=("estimator",))


def _condition(**kw):
  return Panel("{value}: log condition number of the Jacobian", "log(σ_max / σ_min)",
               per=("estimator",), percentiles=True, **kw)


def _targeted(setting):
  return load.binding(setting, "target") is not None


_NOTEBOOK = Series(NOTEBOOK, name="notebook: 20 train batches", style=":",
                   suffix=" (notebook: 20 train batches)", band=False)
_STAIRCASE = (
    Series(step_estimates, name="estimate", suffix=" (estimate)", width=0.5, alpha=0.4,
           marker="", band=False),
    Series(step_estimates, name="smoothed", suffix=" (smoothed)", width=2.0, marker="",
           band=False, smooth=100),
    Series(STAGE_ESTIMATE, name="stage estimate", suffix=" (stage estimate)", style="",
           marker="s", band=False))


# --------------------------------------------------------------------------- the paper


def _e1(setting):
  if load.binding(setting, "estimator") == "nce":
    return ("86.2% → 89.7% ± 0.2 (3rd-party rerun, 10 seeds)",
            "4.77 at 20k (close to log 128 = 4.85)")
  return "≈86% → ≈89.5-90%", "rises while the true MI is constant"


def _e4(setting):
  critic, estimator = load.binding(setting, "critic"), load.binding(setting, "estimator")
  accuracy = ("barely above pixels (≈85%)" if critic == "concat"
              else "clearly above pixels (≈85%)")
  if estimator == "nce":
    return accuracy, "close to log 128 = 4.85 for all critics"
  if estimator == "nwj":
    return accuracy, ("highest I_NWJ of the critics" if critic == "concat"
                      else "lower I_NWJ than the MLP critic")
  return accuracy, ""


def _e5(setting, pixels="85%", plot_range=" (plot range 78-92%)"):
  target = load.binding(setting, "target")
  text = f"{target:g}" if load.number(target) is not None else str(target)
  return (f"ConvNet > MLP{plot_range}; pixels ≈{pixels}",
          f"I_EST ≈ t = {text} (|I_EST - t| ≈ 0 after 7k steps)")


def _e7(setting):
  if _targeted(setting):
    return _e5(setting, pixels="24%", plot_range="")
  critic, estimator = load.binding(setting, "critic"), load.binding(setting, "estimator")
  accuracy = "≈ pixels (≈24%)" if critic == "concat" else "above pixels (≈24%)"
  return accuracy, ("as MNIST: I_NWJ highest for the MLP critic" if estimator == "nwj"
                    else "")


def _staircase(setting):
  estimator = load.binding(setting, "estimator")
  bound = {"nce": "; I_NCE saturates at log 64 ≈ 4.16 (batch 64)",
           "nwj": "; I_NWJ: little bias, variance growing with the MI"}.get(estimator, "")
  return "", f"Poole et al.: true MI 2, 4, 6, 8, 10 nats per stage{bound}"


EXPERIMENTS = {
    "E1": Experiment(
        "Section 3.1: invertible RealNVP encoders", reference=_e1,
        figures=[Figure("figure1ab.png", "Figure 1a, b (Section 3.1): invertible RealNVP "
                        "encoders", [_twin()])]),
    "E2": Experiment(
        "Section 3.1, App. B: adversarially trained invertible encoder",
        reference=lambda s: ("falls well below pixels (≈85%), encoder invertible",
                             "(no estimator)"),
        figures=[Figure("figure1c.png", "Figure 1c (Section 3.1, App. B): adversarially "
                        "trained invertible encoder", [
                            Panel("Adversarial training", "Test accuracy",
                                  (Series(ACCURACY, name="Test accuracy"),), baseline=True,
                                  not_invertible=True),
                            Panel("Invertibility", "max |g1⁻¹(g1(x)) − x|",
                                  (Series(RECONSTRUCTION, name="reconstruction error"),),
                                  optional=True, log_y=True),
                            Panel("Smallest coupling scale", "min scale",
                                  (Series(MIN_SCALE, name="min scale"),), optional=True,
                                  log_y=True)])]),
    "E3": Experiment(
        "Section 3.1: MLP encoder with skip connections",
        reference=lambda s: ("rises within 83-90% (noisy pixels ≈83.5-84%)", "rises"),
        figures=[
            Figure("figure2.png", "Figure 2 (Section 3.1): MLP encoder with skip connections",
                   [_twin(), _condition(only={"estimator": ("nce",)})]),
            Figure("figure5.png", "Figure 5 (App. F): log condition number of the Jacobian, "
                   "other estimators", [_condition(exclude={"estimator": ("nce",)})])]),
    "E4": Experiment(
        "Section 3.2: critic architectures", reference=_e4,
        figures=[
            Figure("figure3.png", "Figure 3 (Section 3.2): critic architectures",
                   [_accuracy(), _bound(only={"estimator": ("nwj",)})], lines=("critic",)),
            Figure("figure6.png", "Figure 6 (App. F): test bound for different critics",
                   [Panel("{value}", "Test {value}", (Series(BOUND, name="Test {value}"),
                                                      _NOTEBOOK),
                          per=("estimator",), exclude={"estimator": ("nwj",)})],
                   lines=("critic",))]),
    "E5": Experiment(
        "Section 3.3: encoders trained to a target I_EST = t", reference=_e5,
        figures=[
            Figure("figure4ab.png", "Figure 4a, b (Section 3.3): encoders trained to a "
                   "target I_EST = t", [_accuracy()], lines=("encoder", "target")),
            Figure("figure7.png", "Figure 7 (App. F): test loss |I_EST - t|", [_gap()],
                   lines=("encoder", "target"))]),
    "E6": Experiment(
        "Section 4, App. E: i.i.d. and non-i.i.d. negatives",
        reference=lambda s: ("", "true MI ≈ 0.0204 nats: non-i.i.d. above it, i.i.d. below"),
        figures=[Figure("figure4c.png", "Figure 4c (Section 4): i.i.d. and non-i.i.d. "
                        "negatives", [Panel("Estimates", I_EST, (Series(BOUND, name="estimate"),),
                                            truth=TRUE_MI_KEY)],
                        lines=("estimator", "iid"))]),
    "E7": Experiment(
        "App. G: CIFAR10", reference=_e7,
        figures=[
            Figure("figure8.png", "Figure 8 (App. G): critic architectures on CIFAR10",
                   [_accuracy(), _bound()], where=lambda s: not _targeted(s), rows=2,
                   lines=("critic",)),
            Figure("figure9.png", "Figure 9 (App. G): encoders trained to a target "
                   "I_EST = t on CIFAR10", [_accuracy(), _gap()], where=_targeted, rows=2,
                   lines=("encoder", "target"))]),
    "staircase": Experiment(
        "Staircase benchmark (Poole et al., 2019)", reference=_staircase,
        figures=[Figure("staircase.png", "Staircase benchmark (Poole et al., 2019): "
                        "estimates against the true MI", [
                            Panel("{value}", "MI (nats)", _STAIRCASE,
                                  per=("critic", "estimator"), truth=TRUE_MI_KEY)],
                        rows=2)]),
}


def reference(experiment_id, setting):
  """(accuracy, bound) the paper reports for a configuration, as text ('' if none)."""
  entry = EXPERIMENTS.get(experiment_id)
  if entry is None or entry.reference is None:
    return "", ""
  return entry.reference(setting)
