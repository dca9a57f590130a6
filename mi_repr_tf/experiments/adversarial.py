r"""The adversarially trained invertible encoder: maximal MI, worse than raw pixels (E2).

Section 3.1 ("Maximized MI and worsened downstream performance"), Figure 1c and Appendix B.
g1 is an invertible RealNVP; there is no g2 and no MI estimator: g1 is a bijection, so
I(g1(x_top); x_bottom) = I(x_top; x_bottom) for every parameter value. On top of g1 sits a
linear layer h to 10 logits.

- classifier step: Adam on h's variables only, minimising the cross-entropy of
  softmax(h(g1(x_top))) with the true label;
- encoder step: Adam on g1's variables only, minimising the cross-entropy with the uniform
  distribution over the 10 classes, i.e. making the classes hard to separate linearly;
- a warm-up of 1,000 classifier steps, then rounds of 10 classifier steps and 1 encoder step,
  for 4,000 encoder steps (`run.num_steps` counts encoder steps).

The paper's Appendix B: "the same RealNVP architecture as in the first experiment"
(shift-only couplings, volume preserving) and learning rates 1e-4 (classifier) and 1e-6
(encoder): the defaults here and in gin/adversarial_realnvp.gin. The authors' notebook uses
shift + softplus-scale couplings and 1e-3 / 1e-5 (gin/adversarial_realnvp_notebook.gin);
there the scales can collapse to their 1e-7 floor and g1 stops being invertible in float32.

Evaluation, at encoder step 0 and every `run.eval_every` (400) encoder steps: a separately
trained linear probe (SAGA, as every experiment) on frozen g1 embeddings of all training and
test images, and the invertibility record of `diagnostics` (reconstruction error on a test
batch, `invertible`, and `min_scale` for scaled couplings), so every probe point shows
whether g1 was still invertible. The in-loop classifier's loss and accuracy and the
encoder's loss are means over the steps since the previous evaluation.

Every update, classifier or encoder, takes the next training batch of one stream, so the batch
of an update is a function of the seed and of the number of updates before it, and a resumed run
repeats an interrupted one exactly.
"""

import time

from absl import logging
import gin
import keras
import tensorflow as tf

from mi_repr_tf import data as data_lib
from mi_repr_tf import diagnostics as diagnostics_lib
from mi_repr_tf import encoders as encoders_lib
from mi_repr_tf import evaluation
from mi_repr_tf import registry
from mi_repr_tf import runner
from mi_repr_tf.errors import ConfigError, check_int, check_number


def uniform_cross_entropy(logits):
  """Mean over the batch of H(u, softmax(logits)) = -(1/C) sum_c log softmax(logits)_c, with u
  the uniform distribution over the C classes; its minimum, log C, is reached by equal logits."""
  return tf.reduce_mean(-tf.reduce_mean(tf.nn.log_softmax(logits), axis=-1))


class AdversarialModel(keras.Model):
  """g1 and the linear classifier h: call(x_top) = h(g1(x_top)), the logits."""

  def __init__(self, g1, num_classes, **kwargs):
    super().__init__(**kwargs)
    self.g1 = g1
    self.classifier = keras.layers.Dense(num_classes, name="classifier")

  def call(self, x_top, training=False):
    return self.classifier(self.g1(x_top, training=training))


class AdversarialTrainer:
  """The two updates of Appendix B, each with its own Adam optimiser and variables."""

  def __init__(self, model, classifier_learning_rate, encoder_learning_rate, jit_compile=True):
    self.model = model
    self.classifier_optimizer = keras.optimizers.Adam(classifier_learning_rate,
                                                      name="classifier_adam")
    self.encoder_optimizer = keras.optimizers.Adam(encoder_learning_rate, name="encoder_adam")
    self.classifier_variables = model.classifier.trainable_variables
    self.encoder_variables = model.g1.trainable_variables
    self.classifier_optimizer.build(self.classifier_variables)
    self.encoder_optimizer.build(self.encoder_variables)
    self.classifier_step = tf.function(self._classifier_step, jit_compile=jit_compile)
    self.encoder_step = tf.function(self._encoder_step, jit_compile=jit_compile)

  def losses(self, batch):
    """(classifier loss, classifier accuracy, encoder loss) on `batch`, updating nothing."""
    x_top, labels = batch[0], batch[2]
    logits = self.model(x_top, training=False)
    classifier_loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=logits))
    accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1), labels), tf.float32))
    return classifier_loss, accuracy, uniform_cross_entropy(logits)

  def _classifier_step(self, batch):
    """One Adam step of h on the true labels; g1 is fixed. Returns (loss, batch accuracy)."""
    x_top, labels = batch[0], batch[2]
    features = tf.stop_gradient(self.model.g1(x_top, training=True))
    with tf.GradientTape() as tape:
      logits = self.model.classifier(features)
      loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=labels, logits=logits))
    grads = tape.gradient(loss, self.classifier_variables)
    self.classifier_optimizer.apply(grads, self.classifier_variables)
    accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1), labels), tf.float32))
    return loss, accuracy

  def _encoder_step(self, batch):
    """One Adam step of g1 towards uniform predictions of h; h is fixed. Returns the loss."""
    with tf.GradientTape() as tape:
      loss = uniform_cross_entropy(self.model(batch[0], training=True))
    grads = tape.gradient(loss, self.encoder_variables)
    self.encoder_optimizer.apply(grads, self.encoder_variables)
    return loss

  @tf.function
  def warmup(self, iterator, n):
    """`n` classifier steps on the next `n` batches: [n] losses."""
    losses = tf.TensorArray(tf.float32, size=n)
    for i in tf.range(n):
      losses = losses.write(i, self.classifier_step(next(iterator))[0])
    return losses.stack()

  @tf.function
  def rounds(self, iterator, n, classifier_steps):
    """`n` rounds of `classifier_steps` classifier steps, then one encoder step: classifier
    losses and accuracies [n * classifier_steps], encoder losses [n]."""
    c_loss = tf.TensorArray(tf.float32, size=n * classifier_steps)
    c_acc = tf.TensorArray(tf.float32, size=n * classifier_steps)
    e_loss = tf.TensorArray(tf.float32, size=n)
    for i in tf.range(n):
      for j in tf.range(classifier_steps):
        loss, accuracy = self.classifier_step(next(iterator))
        c_loss = c_loss.write(i * classifier_steps + j, loss)
        c_acc = c_acc.write(i * classifier_steps + j, accuracy)
      e_loss = e_loss.write(i, self.encoder_step(next(iterator)))
    return c_loss.stack(), c_acc.stack(), e_loss.stack()


@gin.configurable("adversarial")
def adversarial_settings(encoder="realnvp", warmup_steps=1000,
                         classifier_steps_per_encoder_step=10, classifier_learning_rate=1e-4,
                         encoder_learning_rate=1e-6, batch_size=128):
  """The adversarial experiment's own settings (Appendix B).

  Args:
    encoder: g1's kind, a registered encoder (the paper: 'realnvp').
    warmup_steps: classifier updates before the first encoder update (the paper: 1,000).
    classifier_steps_per_encoder_step: classifier updates per encoder update (the paper: 10).
    classifier_learning_rate: Adam's learning rate for h (the paper: 1e-4; notebook 1e-3).
    encoder_learning_rate: Adam's learning rate for g1 (the paper: 1e-6; notebook 1e-5).
    batch_size: examples per update.
  """
  registry.get("encoder", encoder, "adversarial.encoder")
  check_int("adversarial.warmup_steps", warmup_steps, 0)
  check_int("adversarial.classifier_steps_per_encoder_step",
            classifier_steps_per_encoder_step, 1)
  check_int("adversarial.batch_size", batch_size, 1)
  for key, value in (("classifier_learning_rate", classifier_learning_rate),
                     ("encoder_learning_rate", encoder_learning_rate)):
    check_number(f"adversarial.{key}", value, 0, strictly=True)
  return dict(encoder=encoder, warmup_steps=warmup_steps,
              classifier_steps=classifier_steps_per_encoder_step,
              classifier_learning_rate=classifier_learning_rate,
              encoder_learning_rate=encoder_learning_rate, batch_size=batch_size)


@registry.register("experiment", "adversarial")
class Adversarial:
  """The adversarial experiment for the run controller (see `runner`)."""

  def __init__(self, settings, strategy):
    if strategy.num_replicas_in_sync != 1:
      raise ConfigError("run.experiment='adversarial' runs on one device; use "
                        "distribute.strategy='default'")
    own = adversarial_settings()
    self.settings, self.own = settings, own
    self.dataset = runner.load_dataset(settings)
    if own["batch_size"] > len(self.dataset.train):
      raise ConfigError(f"adversarial.batch_size={own['batch_size']} is larger than the "
                        f"{len(self.dataset.train)} training images")
    num_classes = int(max(self.dataset.train.labels.max(), self.dataset.test.labels.max())) + 1
    g1 = encoders_lib.build(own["encoder"], self.dataset.half_shape, "g1",
                            key="adversarial.encoder")
    self.model = AdversarialModel(g1, num_classes, name="adversarial")
    self.model(tf.zeros((2,) + tuple(self.dataset.half_shape)))
    self.trainer = AdversarialTrainer(self.model, own["classifier_learning_rate"],
                                      own["encoder_learning_rate"], settings.jit_compile)
    self.evaluator = evaluation.Evaluator(self.model, self.dataset, own["batch_size"],
                                          settings.seed, settings.jit_compile,
                                          diagnostics_lib.settings())
    self.checkpoint = {"model": self.model,
                       "classifier_optimizer": self.trainer.classifier_optimizer,
                       "encoder_optimizer": self.trainer.encoder_optimizer}
    self.step_counter = self.trainer.encoder_optimizer.iterations
    self._iterator, self._next_update = None, None

  def _updates(self, step):
    return int(self.trainer.classifier_optimizer.iterations.numpy()) + step

  def _batches(self, step):
    """The batch stream positioned at the next update."""
    if self._next_update != self._updates(step):
      self._iterator = iter(data_lib.train_batches(
          self.dataset.train, self.own["batch_size"], self.settings.seed,
          self.dataset.noise_std, start_step=self._updates(step)))
    return self._iterator

  def train(self, step, n):
    iterator = self._batches(step)
    warmup_left = self.own["warmup_steps"] - int(
        self.trainer.classifier_optimizer.iterations.numpy())
    if step == 0 and warmup_left > 0:
      t0 = time.perf_counter()
      losses = self.trainer.warmup(iterator, tf.constant(warmup_left)).numpy()
      runner.check_finite({"classifier_loss": losses}, 1, None)
      logging.info("Classifier warm-up: %d steps, final loss %.4f (%.1f s)", warmup_left,
                   losses[-1], time.perf_counter() - t0)
    c_loss, c_acc, e_loss = (t.numpy() for t in self.trainer.rounds(
        iterator, tf.constant(n), tf.constant(self.own["classifier_steps"])))
    self._next_update = self._updates(step + n)
    return {"encoder_loss": e_loss, "classifier_loss": c_loss, "classifier_accuracy": c_acc}

  def initial_losses(self, step):
    peek = next(iter(data_lib.train_batches(
        self.dataset.train, self.own["batch_size"], self.settings.seed,
        self.dataset.noise_std, start_step=self._updates(step))))
    names = ("classifier_loss", "classifier_accuracy", "encoder_loss")
    return {k: float(v) for k, v in zip(names, self.trainer.losses(peek))}

  def measure(self, step):
    t0 = time.perf_counter()
    train_seed, test_seed = evaluation.noise_seeds(self.settings.seed, step)
    embeddings = dict(zip(evaluation.EMBEDDING_KEYS, (
        self.evaluator.embed("train", train_seed), self.dataset.train.labels,
        self.evaluator.embed("test", test_seed), self.dataset.test.labels)))
    t1 = time.perf_counter()
    numbers, histograms = self.evaluator.diagnostics(step)
    numbers["classifier_steps"] = int(self.trainer.classifier_optimizer.iterations.numpy())
    numbers["eval_seconds"] = {"embed": t1 - t0, "diagnostics": time.perf_counter() - t1}
    return runner.Measurement(numbers, histograms, embeddings)
