"""The two-view experiments (Sections 3.1-3.3, Appendix G): g1(x_top), g2(x_bottom), a
critic and an MI estimator, trained with Adam on -I_EST (or |I_EST - t|), evaluated by the
test bound and a linear probe on g1.

Configured by `train.*` (encoder, critic, estimator, target, batch_size, learning_rate,
fuse_steps); the shared settings (seed, steps, evaluation interval, ...) are `run.*`.
"""

import gin
import keras
import tensorflow as tf

from mi_repr_tf import data as data_lib
from mi_repr_tf import diagnostics as diagnostics_lib
from mi_repr_tf import distribute as distribute_lib
from mi_repr_tf import evaluation
from mi_repr_tf import model as model_lib
from mi_repr_tf import registry
from mi_repr_tf import runner
from mi_repr_tf.errors import ConfigError, check_int, check_number


@gin.configurable("train")
def two_view_settings(encoder="mlp", critic="bilinear", estimator="nce", target=None,
                      batch_size=128, learning_rate=1e-4, fuse_steps=True):
  """The two-view experiment's own settings.

  Args:
    encoder: kind of g1 and g2, a registered encoder ('mlp', 'convnet', 'mlp_skip',
      'realnvp').
    critic: a registered critic ('inner_product', 'bilinear', 'separable', 'concat').
    estimator: a registered estimator ('nce', 'nwj', ...).
    target: None to maximise the estimator; a number t to minimise |I_EST - t| (Section 3.3).
    batch_size: K, the pairs per batch (also the test bound's batch size).
    learning_rate: Adam's learning rate (the paper: 1e-4 on MNIST, 1e-5 on CIFAR10).
    fuse_steps: with XLA on one device, compile each loop of `run.steps_per_loop` steps as
      one XLA computation (faster for MLP encoders; far slower for convolutions on the CPU:
      see launch/bench.py); else one XLA call per step.
  """
  for kind, name in (("encoder", encoder), ("critic", critic), ("estimator", estimator)):
    registry.get(kind, name, f"train.{kind}")
  if target is not None:
    check_number("train.target", target)
  check_int("train.batch_size", batch_size, 2)
  check_number("train.learning_rate", learning_rate, 0, strictly=True)
  return dict(encoder=encoder, critic=critic, estimator=estimator, target=target,
              batch_size=batch_size, learning_rate=float(learning_rate),
              fuse_steps=bool(fuse_steps))


@registry.register("experiment", "two_view")
class TwoView:
  """The two-view experiment for the run controller (see `runner`)."""

  def __init__(self, settings, strategy):
    own = two_view_settings()
    self.settings, self.own, self.strategy = settings, own, strategy
    batch_size = own["batch_size"]
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
      raise ConfigError(f"train.batch_size={batch_size} is not divisible by the {replicas} "
                        "replicas of distribute.strategy")
    self.dataset = runner.load_dataset(settings)
    for split in ("train", "test"):
      n = len(getattr(self.dataset, split))
      if batch_size > n:
        raise ConfigError(f"train.batch_size={batch_size} is larger than the {n} {split} "
                          f"images of {self.dataset.name!r}")
    with strategy.scope():
      self.model = model_lib.build_model(own["encoder"], own["critic"], own["estimator"],
                                         self.dataset.half_shape, own["target"])
      self.optimizer = keras.optimizers.Adam(own["learning_rate"])
      self.model.compile(optimizer=self.optimizer)
      self.optimizer.build(self.model.trainable_variables)
    diagnostics = diagnostics_lib.settings()
    self.checkpoint = {"model": self.model, "optimizer": self.optimizer}
    self.step_counter = self.optimizer.iterations
    self.evaluator = evaluation.Evaluator(self.model, self.dataset, batch_size, settings.seed,
                                          settings.jit_compile, diagnostics, own["target"])
    self._train_loop = make_train_loop(self.model, strategy, self.dataset, batch_size,
                                       settings.seed, settings.jit_compile, own["fuse_steps"])

  def train(self, step, n):
    return {"train_loss": self._train_loop(step, n)}

  def initial_losses(self, step):
    peek = next(iter(data_lib.train_batches(self.dataset.train, self.own["batch_size"],
                                            self.settings.seed, self.dataset.noise_std,
                                            start_step=step)))
    return {"train_loss": float(self.model.test_step(peek)["loss"])}

  def measure(self, step):
    numbers, histograms, embeddings = self.evaluator.measure(step)
    return runner.Measurement(numbers, histograms, embeddings)


def make_train_loop(model, strategy, dataset, batch_size, seed, jit_compile, fuse_steps=True):
  """A function (step, n) -> the losses [n] of training steps step + 1, ..., step + n.

  The batches are those of `data.train_batches(dataset.train, batch_size, seed, noise_std,
  start_step=step)`, whichever way they are fed:
  - one replica with `jit_compile` and `fuse_steps`: the n steps are one XLA computation (a
    while loop over `model.train_step`); the images stay on the device and the loop gathers
    each batch by the indices `data.step_indices` gives (plus `data.step_noise`);
  - otherwise a `tf.function` loop over a distributed `tf.data` iterator, each step run on
    every replica by `strategy.run`; each step is one XLA call with one replica and
    `jit_compile`, and without XLA with several.
  """
  if strategy.num_replicas_in_sync == 1 and jit_compile and fuse_steps:
    return _fused_loop(model, dataset, batch_size, seed)
  return _iterator_loop(model, strategy, dataset, batch_size, seed,
                        strategy.num_replicas_in_sync == 1 and jit_compile)


def _fused_loop(model, dataset, batch_size, seed):
  split, noise_std = dataset.train, dataset.noise_std
  images = tf.constant(split.images)

  @tf.function(jit_compile=True)
  def xla_loop(indices, noise):
    losses = tf.TensorArray(tf.float32, size=tf.shape(indices)[0])
    for i in tf.range(tf.shape(indices)[0]):
      x_top, x_bottom = data_lib.split_halves(tf.gather(images, indices[i]))
      if noise is not None:
        x_top, x_bottom = x_top + noise_std * noise[i], x_bottom + noise_std * noise[i]
      losses = losses.write(i, model.train_step((x_top, x_bottom))["loss"])
    return losses.stack()

  def run_xla(step, n):
    indices = data_lib.step_indices(len(split), batch_size, seed, step, n)
    noise = (data_lib.step_noise([batch_size, *dataset.half_shape], seed, step, n)
             if noise_std > 0 else None)
    return xla_loop(indices, noise).numpy()

  return run_xla


def _iterator_loop(model, strategy, dataset, batch_size, seed, xla_steps):
  split, noise_std = dataset.train, dataset.noise_std
  step_fn = tf.function(model.train_step, jit_compile=xla_steps)

  @tf.function
  def iterator_loop(iterator, n):
    losses = tf.TensorArray(tf.float32, size=n)
    for i in tf.range(n):
      outputs = strategy.run(step_fn, args=(next(iterator),))
      losses = losses.write(
          i, strategy.reduce(tf.distribute.ReduceOp.MEAN, outputs["loss"], axis=None))
    return losses.stack()

  state = {"step": None, "iterator": None}

  def run_iterator(step, n):
    if state["step"] != step:  # the first call (or one that does not follow the last)
      state["iterator"] = iter(distribute_lib.distribute_batches(
          strategy, lambda: data_lib.train_batches(split, batch_size, seed, noise_std,
                                                   start_step=step)))
    losses = iterator_loop(state["iterator"], tf.constant(n)).numpy()
    state["step"] = step + n
    return losses

  return run_iterator
