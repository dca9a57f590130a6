"""The staircase benchmark of variational MI bounds (Poole et al. 2019; Song & Ermon 2020).

X, Y in R^dim with independent coordinate pairs, Y_d = rho X_d + sqrt(1 - rho^2) eps_d
(X, eps ~ N(0, I)), so that

    I(X; Y) = -(dim / 2) log(1 - rho^2)   and   rho = sqrt(1 - exp(-2 I / dim)).

The true MI steps through `stages` (2, 4, 6, 8, 10 nats in both papers), `steps_per_stage`
training steps each, while one critic is trained with one estimator on fresh batches of 64
pairs (Adam 5e-4). The cubic variant trains on (X, Y^3): the cube is a bijection of each
coordinate, so the MI is unchanged but the critic must undo a nonlinearity. The critic sees
the raw x and y: `separable` is phi1(x) . phi2(y) (two MLPs, 256-256 relu -> 32) and
`concat` is phi([x, y]) on all K x K pairs (MLP 256-256 relu -> 1).

The batch of training step t (t = 1 .. num_steps) is a pure function of (seed, t): stateless
normals with the seed [run.seed, t], and the rho of the stage of t. A resumed run therefore
redoes the steps since its last checkpoint identically.

Records (see `runner`): at every evaluation the means since the previous one of `estimate`
(the training-batch bound), `true_mi` (in nats) and `train_loss`, plus `step_estimates`, the
per-step training-batch estimates of those steps (a list, step order); at the end of each
stage also `stage` (its index), `stage_true_mi` and `stage_estimate`, the mean bound of the
current critic on `eval_batches` fresh batches of that stage's distribution (seeds
[run.seed, -1], [run.seed, -2], ...: never a training batch).
"""

import math

import gin
import keras
import numpy as np
import tensorflow as tf

from mi_repr_tf import critics
from mi_repr_tf import estimators
from mi_repr_tf import model as model_lib
from mi_repr_tf import registry
from mi_repr_tf import runner
from mi_repr_tf.errors import ConfigError, check_choice, check_int, check_number

CRITICS = ("separable", "concat")
UNITS = {"nats": 1.0, "bits": math.log(2.0)}  # nats per unit


def mi_to_rho(mi, dim):
  """The per-coordinate correlation giving I(X; Y) = `mi` nats over `dim` coordinates.

  Inverts I = -(dim / 2) log(1 - rho^2) (Poole et al. 2019; Song & Ermon 2020): rho = sqrt(1 -
  exp(-2 I / dim)).
  """
  return math.sqrt(-math.expm1(-2.0 * mi / dim))


def rho_to_mi(rho, dim):
  """I(X; Y) in nats of `dim` independent coordinate pairs with correlation `rho`."""
  return -0.5 * dim * math.log1p(-rho * rho)


def stage_of(step, steps_per_stage):
  """The stage index of training step `step` (1-based: step t trains on the t-th batch)."""
  return (step - 1) // steps_per_stage


def sample_batch(seed, rho, dim, batch_size, cubic=False):
  """One batch (x [K, dim], y [K, dim]) drawn from the stateless `seed` ([2] int64).

  x, eps ~ N(0, I); y = rho x + sqrt(1 - rho^2) eps; the cubic variant returns y^3.
  """
  noise = tf.random.stateless_normal([batch_size, 2 * dim], seed)
  x, eps = noise[:, :dim], noise[:, dim:]
  rho = tf.cast(rho, tf.float32)
  y = rho * x + tf.sqrt(1.0 - rho * rho) * eps
  return x, (y * y * y if cubic else y)


def step_batch(seed, step, rhos, steps_per_stage, dim, batch_size, cubic=False):
  """The training batch of step `step` (an int64 tensor >= 1) of a run seeded `seed`."""
  stage = tf.cast((step - 1) // steps_per_stage, tf.int32)
  rho = tf.gather(tf.constant(rhos, tf.float32), stage)
  key = tf.stack([tf.constant(seed, tf.int64), tf.cast(step, tf.int64)])
  return sample_batch(key, rho, dim, batch_size, cubic)


def _check_list(key, values, is_valid, what):
  try:
    values = list(values)
  except TypeError:
    raise ConfigError(f"{key}={values!r} is not valid; it must be a list of {what}") from None
  if not values or not all(is_valid(v) for v in values):
    raise ConfigError(f"{key}={values!r} is not valid; it must be a non-empty list of {what}")
  return values


@gin.configurable("staircase")
def staircase_settings(estimator="nce", critic="separable", stages=(2.0, 4.0, 6.0, 8.0, 10.0),
                       units="nats", dim=20, batch_size=64, steps_per_stage=4000,
                       learning_rate=5e-4, cubic=False, hidden_units=(256, 256), embed_dim=32,
                       eval_batches=64):
  """The staircase benchmark's own settings (Poole et al. 2019; Song & Ermon 2020).

  Args:
    estimator: a registered estimator ('nce', 'nwj', 'tuba', 'dv', 'mine', 'js', 'smile',
      'interpolated'); its own parameters are bound under its name (e.g. `smile.tau`).
    critic: 'separable' (phi1(x) . phi2(y)) or 'concat' (phi([x, y]) on all pairs).
    stages: the true MI of each stage, in `units`; the run steps through them in order.
    units: 'nats' or 'bits' for `stages`. Everything recorded is in nats.
    dim: the dimension of X and of Y.
    batch_size: K, pairs per batch (both papers: 64).
    steps_per_stage: training steps per stage (both papers: 4,000); run.num_steps must be
      len(stages) * steps_per_stage and run.eval_every must divide it.
    learning_rate: Adam's (both papers: 5e-4).
    cubic: train on (x, y^3) instead of (x, y); the MI is the same.
    hidden_units: the hidden relu layers of the critic's MLPs.
    embed_dim: the output dimension of each separable MLP (ignored by 'concat').
    eval_batches: fresh batches averaged for `stage_estimate` at the end of each stage.
  Returns:
    A dict of the validated settings, with `mis` (nats) and `rhos` per stage.
  """
  registry.get("estimator", estimator, "staircase.estimator")
  check_choice("staircase.critic", critic, CRITICS)
  check_choice("staircase.units", units, tuple(UNITS))
  positive = lambda v: (isinstance(v, (int, float)) and not isinstance(v, bool)
                        and math.isfinite(v) and v > 0)
  stages = _check_list("staircase.stages", stages, positive, "numbers > 0")
  hidden_units = _check_list(
      "staircase.hidden_units", hidden_units,
      lambda u: isinstance(u, int) and not isinstance(u, bool) and u >= 1, "integers >= 1")
  check_int("staircase.dim", dim, 1)
  check_int("staircase.batch_size", batch_size, 2)
  check_int("staircase.steps_per_stage", steps_per_stage, 1)
  check_int("staircase.embed_dim", embed_dim, 1)
  check_int("staircase.eval_batches", eval_batches, 1)
  check_number("staircase.learning_rate", learning_rate, 0, strictly=True)
  mis = [float(s) * UNITS[units] for s in stages]
  return dict(estimator=estimator, critic=critic, mis=mis,
              rhos=[mi_to_rho(mi, dim) for mi in mis], dim=dim, batch_size=batch_size,
              steps_per_stage=steps_per_stage, learning_rate=float(learning_rate),
              cubic=bool(cubic), hidden_units=tuple(hidden_units), embed_dim=embed_dim,
              eval_batches=eval_batches)


def check_schedule(settings, own):
  """run.num_steps must cover the stages exactly, and every stage end must be evaluated."""
  stages, per_stage = len(own["mis"]), own["steps_per_stage"]
  if settings.num_steps != stages * per_stage:
    raise ConfigError(
        f"run.num_steps={settings.num_steps} does not match the staircase: "
        f"len(staircase.stages)={stages} x staircase.steps_per_stage={per_stage} = "
        f"{stages * per_stage}; set run.num_steps={stages * per_stage}")
  if per_stage % settings.eval_every:
    raise ConfigError(
        f"run.eval_every={settings.eval_every} does not divide staircase.steps_per_stage="
        f"{per_stage}: every stage end must be an evaluation (for its stage_estimate)")


def build_critic(own):
  """The critic layer on raw (x, y): separable or concat MLPs of the configured sizes."""
  if own["critic"] == "separable":
    return critics.SeparableCritic(own["hidden_units"], own["embed_dim"], name="critic")
  return critics.ConcatCritic(own["hidden_units"], name="critic")


@registry.register("experiment", "staircase")
class Staircase:
  """The staircase benchmark for the run controller (see `runner`).

  One model (identity encoders, the critic, the estimator) and Adam; `train` runs
  `steps_per_loop` steps as one compiled call (a `tf.range` loop, XLA when run.jit_compile).
  The strategy is ignored: the benchmark's batches are small and run on one device.
  """

  dataset = None  # no images: no pixel baseline, no probe

  def __init__(self, settings, strategy):
    del strategy
    own = staircase_settings()
    check_schedule(settings, own)
    self.settings, self.own = settings, own
    self.schedule = runner.eval_steps(settings.num_steps, settings.eval_every)
    self._estimates = {}  # training step -> its batch estimate, until recorded
    self._build_model()
    self._build_functions()

  def _build_model(self):
    own = self.own
    dummy = tf.zeros([2, own["dim"]])
    critic = build_critic(own)
    critic(dummy, dummy)  # builds its variables eagerly, outside any traced graph
    self.model = model_lib.MIModel(
        g1=keras.layers.Identity(name="g1"), g2=keras.layers.Identity(name="g2"),
        critic=critic, estimator=estimators.build(own["estimator"], "staircase.estimator"))
    self.model((dummy, dummy))
    self.model.bound_and_loss(dummy, dummy)  # builds an estimator's own variables
    optimizer = keras.optimizers.Adam(own["learning_rate"])
    self.model.compile(optimizer=optimizer)
    optimizer.build(self.model.trainable_variables)
    self.checkpoint = {"model": self.model, "optimizer": optimizer}
    self.step_counter = optimizer.iterations

  def _build_functions(self):
    own, seed = self.own, self.settings.seed
    shape = dict(dim=own["dim"], batch_size=own["batch_size"], cubic=own["cubic"])
    rhos = tf.constant(own["rhos"], tf.float32)

    def batch(step):
      return step_batch(seed, step, own["rhos"], own["steps_per_stage"], **shape)

    @tf.function(jit_compile=self.settings.jit_compile)
    def train_loop(start, n):
      bounds = tf.TensorArray(tf.float32, size=n)
      losses = tf.TensorArray(tf.float32, size=n)
      for i in tf.range(n):
        out = self.model.train_step(batch(start + tf.cast(i, tf.int64)))
        bounds, losses = bounds.write(i, out["bound"]), losses.write(i, out["loss"])
      return bounds.stack(), losses.stack()

    @tf.function(jit_compile=self.settings.jit_compile)
    def stage_estimate(stage):
      n = own["eval_batches"]
      values = tf.TensorArray(tf.float32, size=n)
      for i in tf.range(n):
        index = tf.cast(stage * n + i + 1, tf.int64)  # fresh: training steps are >= 1
        key = tf.stack([tf.constant(seed, tf.int64), -index])
        values = values.write(i, self.model.test_step(
            sample_batch(key, tf.gather(rhos, stage), **shape))["bound"])
      return tf.reduce_mean(values.stack())

    self._batch, self._train_loop, self._stage_estimate = batch, train_loop, stage_estimate

  def true_mi(self, steps):
    """The true MI in nats of the batches of training steps `steps` (array, 1-based)."""
    stages = stage_of(np.asarray(steps, np.int64), self.own["steps_per_stage"])
    return np.asarray(self.own["mis"], np.float64)[stages]

  def train(self, step, n):
    bounds, losses = self._train_loop(tf.constant(step + 1, tf.int64), tf.constant(n))
    bounds = bounds.numpy()
    steps = np.arange(step + 1, step + n + 1)
    self._estimates.update(zip(steps.tolist(), bounds.astype(np.float64).tolist()))
    return {"estimate": bounds, "true_mi": self.true_mi(steps), "train_loss": losses.numpy()}

  def initial_losses(self, step):
    out = self.model.test_step(self._batch(tf.constant(step + 1, tf.int64)))
    return {"estimate": float(out["bound"]), "true_mi": float(self.true_mi([step + 1])[0]),
            "train_loss": float(out["loss"])}

  def measure(self, step):
    """`step_estimates` of the steps since the previous evaluation; at a stage end also the
    stage's index, true MI and `stage_estimate` on fresh batches."""
    previous = max([s for s in self.schedule if s < step], default=0)
    numbers = {"step_estimates": [self._estimates[t] for t in range(previous + 1, step + 1)
                                  if t in self._estimates]}
    self._estimates = {t: v for t, v in self._estimates.items() if t > step}
    per_stage = self.own["steps_per_stage"]
    if step > 0 and step % per_stage == 0:
      stage = step // per_stage - 1
      numbers.update(stage=stage, stage_true_mi=self.own["mis"][stage],
                     stage_estimate=float(self._stage_estimate(tf.constant(stage))))
    return runner.Measurement(numbers)
