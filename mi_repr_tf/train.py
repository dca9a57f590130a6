r"""Trains one two-view MI model, evaluating it as it goes (Sections 3.2-3.3 of the paper).

    python -m mi_repr_tf.train --gin_file=gin/critic_bilinear.gin \
        [--gin_file=...] [--gin_param="train.seed=1" ...] [--workdir=runs/my_run]

Evaluation happens at step 0, every `eval_every` steps and at the last step: the test bound,
the linear probe accuracy and the mean training loss since the previous evaluation go to
`results.jsonl` and TensorBoard (see `rundir` for the run directory's layout).

Resuming: running the same command on the same workdir restores the last checkpoint. A
checkpoint is written after each evaluation's results, so a run killed at any point repeats at
most the training steps since the last evaluation (the batches are a pure function of seed and
step, so they come out identical) and never loses or repeats an evaluation. A finished run is
not trained again.
"""

import collections
from concurrent import futures
import datetime
import os

# Quiet TensorFlow's C++ INFO lines on the console unless the user chose a level.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
import shutil
import sys
import time

from absl import app
from absl import flags
from absl import logging
import gin
import keras
import numpy as np
import tensorflow as tf

from mi_repr_tf import adversarial
from mi_repr_tf import critics as critics_lib
from mi_repr_tf import data as data_lib
from mi_repr_tf import diagnostics as diagnostics_lib
from mi_repr_tf import distribute as distribute_lib
from mi_repr_tf import encoders as encoders_lib
from mi_repr_tf import estimators as estimators_lib
from mi_repr_tf import evaluation
from mi_repr_tf import gaussian
from mi_repr_tf import loop
from mi_repr_tf import model as model_lib
from mi_repr_tf import rundir
from mi_repr_tf.errors import ConfigError, NonFiniteLossError, check_choice


def _validate(num_steps, eval_every, batch_size, learning_rate, steps_per_loop, eval_chunk_size):
  checks = [
      ("train.num_steps", num_steps, isinstance(num_steps, int) and num_steps >= 0,
       "an integer >= 0"),
      ("train.eval_every", eval_every, isinstance(eval_every, int) and eval_every >= 1,
       "an integer >= 1"),
      ("train.batch_size", batch_size, isinstance(batch_size, int) and batch_size >= 2,
       "an integer >= 2 (the estimators need negatives)"),
      ("train.learning_rate", learning_rate,
       isinstance(learning_rate, (int, float)) and learning_rate > 0, "a number > 0"),
      ("train.steps_per_loop", steps_per_loop,
       isinstance(steps_per_loop, int) and steps_per_loop >= 1, "an integer >= 1"),
      ("train.eval_chunk_size", eval_chunk_size,
       isinstance(eval_chunk_size, int) and eval_chunk_size >= 2, "an integer >= 2"),
  ]
  for key, value, ok, valid in checks:
    if not ok:
      raise ConfigError(f"{key}={value!r} is not valid; it must be {valid}")


@gin.configurable("train", denylist=["workdir", "log_every_secs", "async_probe"])
def train(workdir,
          num_steps=21000,
          eval_every=1000,
          batch_size=128,
          learning_rate=1e-4,
          estimator="nce",
          encoder="mlp",
          critic="bilinear",
          target=None,
          seed=0,
          eval_chunk_size=512,
          steps_per_loop=100,
          jit_compile=True,
          fuse_steps=True,
          pixel_baseline=True,
          log_every_secs=10.0,
          async_probe=True):
  """Trains and evaluates one run in `workdir`; returns the list of evaluation records.

  Args:
    workdir: the run directory (created if needed; an existing run in it is resumed).
    num_steps: training steps (the paper: 21,000; CIFAR10: 3x).
    eval_every: evaluate every this many steps (and at step 0 and at the end).
    batch_size: K, the number of pairs per batch (and of the score matrix's rows).
    learning_rate: Adam's learning rate (the paper: 1e-4 on MNIST, 1e-5 on CIFAR10).
    estimator: 'nce' (InfoNCE) or 'nwj'.
    encoder: kind of g1 and g2, one of encoders.ENCODERS ('mlp', 'convnet').
    critic: one of critics.CRITICS ('inner_product', 'bilinear', 'separable', 'concat').
    target: None to maximise I_EST; a number t to minimise |I_EST - t| (Section 3.3).
    seed: seeds initialisation, batch order, noise and the probe.
    eval_chunk_size: chunk size of the test bound (the authors' notebook: 512).
    steps_per_loop: training steps per compiled loop call (and how often the loss is checked).
    jit_compile: compile the train step and the evaluation passes with XLA.
    fuse_steps: with XLA on one device, compile each loop of `steps_per_loop` steps as one
      XLA computation (faster for MLP encoders; far slower for convolutions on the CPU, and
      slower for the concat critic: see launch/bench.py); else one XLA call per step.
    pixel_baseline: also probe the raw pixels of x_top once (baseline.json).
    log_every_secs: how often progress is printed (a runtime option, not part of the
      configuration: set it with --log_every_secs).
    async_probe: fit each evaluation's probe in a background thread while training goes on
      (the same numbers; its inputs wait in pending/ until it is recorded). A runtime
      option: --noasync_probe fits it in the foreground.
  """
  _validate(num_steps, eval_every, batch_size, learning_rate, steps_per_loop, eval_chunk_size)
  check_choice("train.estimator", estimator, estimators_lib.ESTIMATORS)
  check_choice("train.encoder", encoder, encoders_lib.ENCODERS)
  check_choice("train.critic", critic, critics_lib.CRITICS)
  if target is not None and not isinstance(target, (int, float)):
    raise ConfigError(f"train.target={target!r} is not valid; it must be None or a number")

  strategy = distribute_lib.get_strategy()  # before any op: it may split the CPU
  replicas = strategy.num_replicas_in_sync
  if batch_size % replicas:
    raise ConfigError(f"train.batch_size={batch_size} is not divisible by the {replicas} "
                      "replicas of distribute.strategy")
  dataset = data_lib.load_dataset()
  keras.utils.set_random_seed(seed)
  tf.config.experimental.enable_op_determinism()
  with strategy.scope():
    model = model_lib.build_model(encoder, critic, estimator, dataset.half_shape, target)
    optimizer = keras.optimizers.Adam(learning_rate)
    model.compile(optimizer=optimizer)
    optimizer.build(model.trainable_variables)
  diagnostics = diagnostics_lib.settings()  # before the config string: its bindings belong in it
  config_str = gin.operative_config_str()

  # Everything is valid: only now is anything written. In a multi-worker cluster only the
  # chief records the run; the other workers keep their checkpoints in a folder of their own
  # (every worker must take part in saving).
  chief = distribute_lib.is_chief(strategy)
  if not chief:
    workdir = os.path.join(workdir, f".worker-{distribute_lib.task_id(strategy)}")
  session = loop.RunSession(workdir, config_str,
                            tf.train.Checkpoint(model=model, optimizer=optimizer),
                            optimizer.iterations)
  if session.finished(num_steps):
    return session.results
  step = session.step

  if chief and pixel_baseline and rundir.read_json(workdir, rundir.BASELINE) is None:
    t0 = time.perf_counter()
    accuracy = evaluation.pixel_baseline(dataset, seed)
    rundir.write_json(workdir, rundir.BASELINE, {"pixel_accuracy": accuracy})
    logging.info("Linear probe on raw x_top pixels: accuracy %.4f (%.1f s)", accuracy,
                 time.perf_counter() - t0)

  evaluator = evaluation.Evaluator(model, dataset, eval_chunk_size, seed, jit_compile,
                                   diagnostics)
  train_loop = make_train_loop(model, strategy, dataset, batch_size, seed, jit_compile,
                               fuse_steps)

  def finish(record, histograms, embeddings, accuracy, probe_seconds):
    """Completes an evaluation with its probe result: TensorBoard, results.jsonl, and at the
    last step embeddings.npz."""
    record["accuracy"] = accuracy
    record["eval_seconds"]["probe"] = probe_seconds
    if record["step"] not in session.done:
      with session.writer.as_default(step=record["step"]):
        diagnostics_lib.write_summaries(record, histograms)
      session.record(record, ("train_loss", "test_bound", "accuracy", "test_target_gap"))
      seconds = record["eval_seconds"]
      logging.info("eval step %d: train_loss %.4f  test_bound %.4f  accuracy %.4f  "
                   "(bound %.1f s, embed %.1f s, probe %.1f s%s)", record["step"],
                   record["train_loss"], record["test_bound"], accuracy, seconds["test_bound"],
                   seconds["embed"], probe_seconds, ", in the background" if async_probe else "")
    if record["step"] == num_steps:
      rundir.write_embeddings(workdir, embeddings)
    rundir.remove_pending(workdir, record["step"])

  # Evaluations whose background probe a killed run did not finish: their checkpoint was
  # saved, their inputs are on disk.
  for _, record, histograms, embeddings in rundir.read_pending(workdir):
    finish(record, histograms, embeddings, *evaluator.probe(embeddings))

  probes = futures.ThreadPoolExecutor(1) if async_probe and chief else None
  in_flight = collections.deque()  # (record, histograms, embeddings, future), by step

  def drain(wait):
    while in_flight and (wait or in_flight[0][3].done()):
      record, histograms, embeddings, future = in_flight.popleft()
      finish(record, histograms, embeddings, *future.result())

  try:
    interval_losses = []
    progress = loop.Progress(step, num_steps, log_every_secs)
    for next_eval in [s for s in loop.eval_steps(num_steps, eval_every) if s >= step]:
      while step < next_eval:
        n = min(steps_per_loop, next_eval - step)
        losses = train_loop(step, n)
        loop.check_finite(losses, step + 1, session.latest_checkpoint)
        step += n
        interval_losses.extend(losses.tolist())
        progress.update(step, float(losses[-1]))
        drain(wait=False)
      final = step == num_steps
      if not chief or (step in session.done and not (final and not session.has_embeddings())):
        interval_losses = []  # recorded before the run was killed: only the checkpoint is due
        session.save(step)
        continue
      if not interval_losses:  # step 0, or resumed exactly at an unrecorded evaluation
        peek = next(iter(data_lib.train_batches(dataset.train, batch_size, seed,
                                                dataset.noise_std, start_step=step)))
        interval_losses = [float(model.test_step(peek)["loss"])]  # global batch, one device
      numbers, histograms, embeddings = evaluator.measure(step)
      record = {"step": step, "train_loss": float(np.mean(interval_losses)), **numbers}
      if target is not None:  # Section 3.3: how far the test bound is from the target
        record["test_target_gap"] = abs(record["test_bound"] - target)
      interval_losses = []
      if probes is None:
        finish(record, histograms, embeddings, *evaluator.probe(embeddings))
        session.save(step)
      else:
        # The probe's inputs go to disk before the checkpoint, so a run killed while the probe
        # runs finishes it on resume; the training goes on meanwhile.
        rundir.write_pending(workdir, step, record, histograms, embeddings)
        session.save(step)
        in_flight.append((record, histograms, embeddings,
                          probes.submit(evaluator.probe, embeddings)))
  except NonFiniteLossError:
    drain(wait=True)  # the evaluations before the failure are complete and valid
    raise
  drain(wait=True)
  if probes is not None:
    probes.shutdown()
  session.close()
  return session.results


def make_train_loop(model, strategy, dataset, batch_size, seed, jit_compile, fuse_steps=True):
  """A function (step, n) -> the losses [n] of training steps step + 1, ..., step + n.

  The batches are those of `data.train_batches(dataset.train, batch_size, seed, noise_std,
  start_step=step)`, whichever way they are fed:
  - one replica with `jit_compile` and `fuse_steps`: the n steps are one XLA computation
    (a while loop over
    `model.train_step`); the images stay on the device and the loop gathers each batch by
    the indices `data.step_indices` gives (plus `data.step_noise`), so no Python and no
    tf.data runs between steps;
  - otherwise a `tf.function` loop over a distributed `tf.data` iterator, each step run on
    every replica by `strategy.run`; each step is one XLA call with one replica and
    `jit_compile`, and without XLA with several (the cross-replica gather is left to the
    strategy's collectives).
  """
  split, noise_std = dataset.train, dataset.noise_std
  single_xla = strategy.num_replicas_in_sync == 1 and jit_compile
  if single_xla and fuse_steps:
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

  step_fn = tf.function(model.train_step, jit_compile=single_xla)

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


# --------------------------------------------------------------------------- command line

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("gin_file", [], "Gin files, in order (later ones override).")
flags.DEFINE_multi_string("gin_param", [], "Gin bindings, e.g. \"train.seed=1\".")
flags.DEFINE_string("workdir", None, "Run directory; default: a new folder under runs/.")
flags.DEFINE_float("log_every_secs", 10.0, "Seconds between progress lines on the console.")
flags.DEFINE_bool("async_probe", True, "Fit the linear probe in the background while training "
                  "goes on (two-view runs).")


def default_workdir(gin_files):
  stem = os.path.splitext(os.path.basename(gin_files[-1]))[0] if gin_files else "run"
  stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
  return os.path.join("runs", f"{stem}-{stamp}")


def parse_gin(gin_files, gin_params):
  """Parses gin files, then bindings; a problem becomes one ConfigError naming its source."""
  def parse(source, fn, arg):
    try:
      fn(arg)
    except (ValueError, KeyError, SyntaxError, IOError) as e:
      message = " | ".join(str(e).strip().splitlines()[:6])
      raise ConfigError(f"bad gin configuration in {source}: {message}") from e

  for path in gin_files:
    if not os.path.isfile(path):
      raise ConfigError(f"--gin_file={path!r} does not exist")
    # `include 'other.gin'` inside a gin file resolves next to that file.
    gin.add_config_file_search_path(os.path.dirname(os.path.abspath(path)))
    parse(f"--gin_file={path!r}", gin.parse_config_file, path)
  for binding in gin_params:
    parse(f"--gin_param={binding!r}", gin.parse_config, binding)


# Experiments with a training loop of their own, selected by `experiment.name`. Each is a
# function (workdir, log_every_secs=...) -> list of evaluation records, and a gin
# configurable whose module is imported here so that its bindings parse.
EXPERIMENTS = {
    "two_view": train,
    "adversarial": adversarial.train_adversarial,  # Section 3.1, Appendix B (E2)
    "gaussian": gaussian.train_gaussian,
}


@gin.configurable("experiment")
def get_experiment(name="two_view"):
  """The training function of experiment `name` (one of EXPERIMENTS)."""
  return EXPERIMENTS[check_choice("experiment.name", name, EXPERIMENTS)]


def run(gin_files, gin_params, workdir=None, log_every_secs=10.0, async_probe=True):
  """Parses the configuration and runs the experiment; returns (workdir, results).

  Gin is cleared before and after. A run that fails on its configuration before training
  leaves no new workdir behind.
  """
  gin.clear_config()
  try:
    parse_gin(gin_files, gin_params)
    workdir = workdir or default_workdir(gin_files)
    fresh = not os.path.exists(workdir)
    try:
      experiment = get_experiment()
      options = {"log_every_secs": log_every_secs}
      if experiment is train:
        options["async_probe"] = async_probe
      return workdir, experiment(workdir, **options)
    except ConfigError:
      if fresh and os.path.isdir(workdir):
        shutil.rmtree(workdir)  # nothing half-written that looks like a run
      raise
  finally:
    gin.clear_config()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.get_absl_handler().use_absl_log_file = False
  try:
    workdir, results = run(FLAGS.gin_file, FLAGS.gin_param, FLAGS.workdir,
                           FLAGS.log_every_secs, FLAGS.async_probe)
  except (ConfigError, NonFiniteLossError) as e:
    # gin appends "In call to configurable ..." lines; the message itself names the key.
    message = "\n".join(line for line in str(e).splitlines()
                        if not line.strip().startswith("In call to configurable"))
    print(f"error: {message}", file=sys.stderr)
    return 2
  if results:
    last = results[-1]
    logging.info("Done: %s (step %d, test_bound %.4f, accuracy %.4f)", workdir, last["step"],
                 last.get("test_bound", float("nan")), last.get("accuracy", float("nan")))
  return 0


if __name__ == "__main__":
  app.run(main)
