r"""The adversarially trained invertible encoder: maximal MI, worse than raw pixels (experiment E2).

Section 3.1 ("Maximized MI and worsened downstream performance"), Figure 1c and Appendix B.
g1 is the RealNVP of the first experiment with shift and softplus-scale couplings; there is no
g2 and no MI estimator: g1 is a bijection, so I(g1(x_top); x_bottom) = I(x_top; x_bottom) for
every parameter value. On top of g1 sits a linear layer h to 10 logits.

- classifier step: Adam (learning rate 1e-3) on h's variables only, minimising the
  cross-entropy of softmax(h(g1(x_top))) with the true label;
- encoder step: Adam (learning rate 1e-5) on g1's variables only, minimising the cross-entropy
  with the uniform distribution over the 10 classes, i.e. making the classes hard to separate
  linearly;
- a warm-up of 1,000 classifier steps, then rounds of 10 classifier steps and 1 encoder step,
  for 4,000 encoder steps.

The paper's appendix gives learning rates of 1e-4 (classifier) and 1e-6 (encoder); the authors'
notebook, which produced Figure 1c, uses 1e-3 and 1e-5 (see shared/SPEC.md): the defaults follow
the notebook.

Evaluation, at encoder step 0 and every 400 encoder steps: a separately trained linear probe
(the SAGA protocol of every experiment, `probe.linear_probe`) on frozen g1 embeddings of all
training and test images, whose accuracy falls below the raw-pixel probe (baseline.json), and
the reconstruction error max |g1^-1(g1(x)) - x| (`diagnostics`), which shows g1 still exactly
invertible. The in-loop classifier's loss and accuracy, and the encoder's loss, are recorded as
means over the steps since the previous evaluation.

g1 is invertible for every parameter value, but with scales allowed down to 1e-7 the encoder can
push some of them to that floor, where float32 no longer resolves x1 * scale next to the shift:
the map is then invertible in exact arithmetic only, and `reconstruction_error` grows by orders
of magnitude (seen on a shortened CPU run: 4 couplings of 256-256 units, from about 800 encoder
steps on). Read the probe accuracy together with it.

    python -m mi_repr_tf.train --gin_file=gin/adversarial_realnvp.gin [--workdir=...]

The run directory, resuming and TensorBoard are those of every run (see `train`, `rundir`):
"step" counts encoder steps; a checkpoint (g1, h, both optimisers) follows each evaluation.
Every update, classifier or encoder, takes the next training batch of one stream, so the batch
of an update is a function of the seed and of the number of updates before it, and a resumed run
repeats an interrupted one exactly.
"""

import time

from absl import logging
import gin
import keras
import numpy as np
import tensorflow as tf

from mi_repr_tf import data as data_lib
from mi_repr_tf import diagnostics as diagnostics_lib
from mi_repr_tf import encoders as encoders_lib
from mi_repr_tf import evaluation
from mi_repr_tf import loop
from mi_repr_tf import probe as probe_lib
from mi_repr_tf import rundir
from mi_repr_tf.errors import ConfigError, check_choice

SCALARS = ("classifier_loss", "classifier_accuracy", "encoder_loss", "accuracy",
           "reconstruction_error")


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
  """The two updates of Appendix B, each with its own Adam optimiser and variables.

  `classifier_step` changes only h (through `classifier_optimizer`), `encoder_step` only g1
  (through `encoder_optimizer`); each optimiser's `iterations` counts its updates.
  """

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

  def warmup(self, iterator, n):
    """`n` classifier steps on the next `n` batches: [n] losses (numpy)."""
    return self._warmup_loop(iterator, tf.constant(n)).numpy()

  def rounds(self, iterator, n, classifier_steps):
    """`n` rounds of `classifier_steps` classifier steps, then one encoder step.

    Returns numpy arrays: classifier losses and accuracies [n * classifier_steps], encoder
    losses [n].
    """
    c_loss, c_acc, e_loss = self._rounds_loop(iterator, tf.constant(n),
                                              tf.constant(classifier_steps))
    return c_loss.numpy(), c_acc.numpy(), e_loss.numpy()

  @tf.function
  def _warmup_loop(self, iterator, n):
    losses = tf.TensorArray(tf.float32, size=n)
    for i in tf.range(n):
      losses = losses.write(i, self.classifier_step(next(iterator))[0])
    return losses.stack()

  @tf.function
  def _rounds_loop(self, iterator, n, classifier_steps):
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


def _validate(**values):
  minimum = {"encoder_steps": 0, "eval_every": 1, "warmup_steps": 0,
             "classifier_steps_per_encoder_step": 1, "batch_size": 1, "steps_per_loop": 1}
  for key, low in minimum.items():
    value = values[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
      raise ConfigError(f"adversarial.{key}={value!r} is not valid; it must be an integer "
                        f">= {low}")
  for key in ("classifier_learning_rate", "encoder_learning_rate"):
    value = values[key]
    if not isinstance(value, (int, float)) or not value > 0:
      raise ConfigError(f"adversarial.{key}={value!r} is not valid; it must be a number > 0")


def probe_accuracy(evaluator, dataset, step, seed):
  """The separately trained linear probe on frozen g1 (as `Evaluator.evaluate`, no bound).

  Returns (accuracy, embeddings, {"embed": seconds, "probe": seconds}).
  """
  t0 = time.perf_counter()
  train_emb, train_y = evaluator.embed(dataset.train, noise_seed=2 * (seed + step) + 1)
  test_emb, test_y = evaluator.embed(dataset.test, noise_seed=2 * (seed + step) + 2)
  t1 = time.perf_counter()
  accuracy = probe_lib.linear_probe(train_emb, train_y, test_emb, test_y, seed=seed)
  embeddings = {"train_embeddings": train_emb, "train_labels": train_y,
                "test_embeddings": test_emb, "test_labels": test_y}
  return accuracy, embeddings, {"embed": t1 - t0, "probe": time.perf_counter() - t1}


@gin.configurable("adversarial", denylist=["workdir", "log_every_secs"])
def train_adversarial(workdir,
                      encoder="realnvp",
                      encoder_steps=4000,
                      eval_every=400,
                      warmup_steps=1000,
                      classifier_steps_per_encoder_step=10,
                      classifier_learning_rate=1e-3,
                      encoder_learning_rate=1e-5,
                      batch_size=128,
                      seed=0,
                      steps_per_loop=10,
                      jit_compile=True,
                      pixel_baseline=True,
                      log_every_secs=10.0):
  """Trains g1 adversarially (Appendix B) in `workdir`; returns the list of evaluation records.

  Args:
    workdir: the run directory (created if needed; an existing run in it is resumed).
    encoder: g1's kind, one of encoders.ENCODERS (the paper: 'realnvp' with
      realnvp.coupling = 'shift_and_scale').
    encoder_steps: encoder updates (the paper: 4,000); results' "step" counts them.
    eval_every: probe every this many encoder steps (the paper: 400), and at 0 and the end.
    warmup_steps: classifier updates before the first encoder update (the paper: 1,000).
    classifier_steps_per_encoder_step: classifier updates per encoder update (the paper: 10).
    classifier_learning_rate: Adam's learning rate for h (the notebook: 1e-3).
    encoder_learning_rate: Adam's learning rate for g1 (the notebook: 1e-5).
    batch_size: examples per update.
    seed: seeds initialisation, permutations, batch order and the probe.
    steps_per_loop: rounds (classifier steps + one encoder step) per compiled loop call.
    jit_compile: compile the updates and the embedding pass with XLA.
    pixel_baseline: also probe the raw pixels of x_top once (baseline.json).
    log_every_secs: how often progress is printed (a runtime option, not configuration).
  """
  _validate(encoder_steps=encoder_steps, eval_every=eval_every, warmup_steps=warmup_steps,
            classifier_steps_per_encoder_step=classifier_steps_per_encoder_step,
            batch_size=batch_size, steps_per_loop=steps_per_loop,
            classifier_learning_rate=classifier_learning_rate,
            encoder_learning_rate=encoder_learning_rate)
  check_choice("adversarial.encoder", encoder, encoders_lib.ENCODERS)
  dataset = data_lib.load_dataset()
  num_classes = int(max(dataset.train.labels.max(), dataset.test.labels.max())) + 1
  keras.utils.set_random_seed(seed)
  tf.config.experimental.enable_op_determinism()
  g1 = encoders_lib.get_encoder(encoder, dataset.half_shape, "g1")
  model = AdversarialModel(g1, num_classes, name="adversarial")
  model(tf.zeros((2,) + tuple(dataset.half_shape)))
  trainer = AdversarialTrainer(model, classifier_learning_rate, encoder_learning_rate,
                               jit_compile)
  diagnostics = diagnostics_lib.settings()
  config_str = gin.operative_config_str()

  # Everything is valid: only now is anything written.
  checkpoint = tf.train.Checkpoint(model=model,
                                   classifier_optimizer=trainer.classifier_optimizer,
                                   encoder_optimizer=trainer.encoder_optimizer)
  session = loop.RunSession(workdir, config_str, checkpoint, trainer.encoder_optimizer.iterations)
  if session.finished(encoder_steps):
    return session.results
  step = session.step

  if pixel_baseline and rundir.read_json(workdir, rundir.BASELINE) is None:
    t0 = time.perf_counter()
    accuracy = evaluation.pixel_baseline(dataset, seed)
    rundir.write_json(workdir, rundir.BASELINE, {"pixel_accuracy": accuracy})
    logging.info("Linear probe on raw x_top pixels: accuracy %.4f (%.1f s)", accuracy,
                 time.perf_counter() - t0)

  evaluator = evaluation.Evaluator(model, dataset, seed=seed, jit_compile=jit_compile,
                                   diagnostics=diagnostics)
  updates = int(trainer.classifier_optimizer.iterations.numpy()) + step
  iterator = iter(data_lib.train_batches(dataset.train, batch_size, seed, dataset.noise_std,
                                         start_step=updates))
  k = classifier_steps_per_encoder_step
  interval = {"classifier_loss": [], "classifier_accuracy": [], "encoder_loss": []}
  progress = loop.Progress(step, encoder_steps, log_every_secs)
  for next_eval in [s for s in loop.eval_steps(encoder_steps, eval_every) if s >= step]:
    while step < next_eval:
      warmup_left = warmup_steps - int(trainer.classifier_optimizer.iterations.numpy())
      if step == 0 and warmup_left > 0:
        t0 = time.perf_counter()
        losses = trainer.warmup(iterator, warmup_left)
        loop.check_finite(losses, 1, session.latest_checkpoint)
        logging.info("Classifier warm-up: %d steps, final loss %.4f (%.1f s)", warmup_left,
                     losses[-1], time.perf_counter() - t0)
      n = min(steps_per_loop, next_eval - step)
      c_loss, c_acc, e_loss = trainer.rounds(iterator, n, k)
      loop.check_finite(c_loss, 1 + int(trainer.classifier_optimizer.iterations.numpy())
                        - len(c_loss), session.latest_checkpoint)
      loop.check_finite(e_loss, step + 1, session.latest_checkpoint)
      step += n
      interval["classifier_loss"].extend(c_loss.tolist())
      interval["classifier_accuracy"].extend(c_acc.tolist())
      interval["encoder_loss"].extend(e_loss.tolist())
      progress.update(step, float(e_loss[-1]))
    final = step == encoder_steps
    if step in session.done and not (final and not session.has_embeddings()):
      interval = {key: [] for key in interval}  # recorded before the run was killed
      session.save(step)
      continue
    if not interval["encoder_loss"]:  # step 0, or resumed exactly at an unrecorded evaluation
      peek = next(iter(data_lib.train_batches(
          dataset.train, batch_size, seed, dataset.noise_std,
          start_step=int(trainer.classifier_optimizer.iterations.numpy()) + step)))
      interval = {key: [float(v)] for key, v in zip(interval, trainer.losses(peek))}
    accuracy, embeddings, seconds = probe_accuracy(evaluator, dataset, step, seed)
    t0 = time.perf_counter()
    diagnostic_numbers, histograms = evaluator.diagnostics()
    seconds["diagnostics"] = time.perf_counter() - t0
    record = {"step": step,
              "classifier_steps": int(trainer.classifier_optimizer.iterations.numpy()),
              **{key: float(np.mean(values)) for key, values in interval.items()},
              "accuracy": accuracy, **diagnostic_numbers, "eval_seconds": seconds}
    interval = {key: [] for key in interval}
    if step not in session.done:
      with session.writer.as_default(step=step):
        diagnostics_lib.write_summaries(diagnostic_numbers, histograms)
      session.record(record, SCALARS)
      logging.info("eval step %d: probe accuracy %.4f  classifier loss %.4f (accuracy %.4f)  "
                   "encoder loss %.4f  reconstruction error %s  (%.1f s)", step,
                   record["accuracy"], record["classifier_loss"],
                   record["classifier_accuracy"], record["encoder_loss"],
                   record.get("reconstruction_error"), sum(seconds.values()))
    if final:
      rundir.write_embeddings(workdir, embeddings)
    session.save(step)
  session.close()
  return session.results
