"""Pieces shared by every experiment's training loop: evaluation schedule, console progress,
the check for a non-finite loss, and the run directory session (checkpoints, results,
TensorBoard)."""

import datetime
import math
import os
import time

from absl import logging
import numpy as np
import tensorflow as tf

from mi_repr_tf import hparams as hparams_lib
from mi_repr_tf import rundir
from mi_repr_tf.errors import NonFiniteLossError


def eval_steps(num_steps, eval_every):
  """The steps evaluated: 0, eval_every, 2 * eval_every, ..., and always num_steps."""
  return sorted(set(range(0, num_steps + 1, eval_every)) | {num_steps})


class Progress:
  """Console progress: step, steps per second and time left, at most every `every_secs`."""

  def __init__(self, start_step, num_steps, every_secs):
    self.num_steps = num_steps
    self.every_secs = every_secs
    self.start_time = self.last_time = time.perf_counter()
    self.start_step = start_step

  def update(self, step, loss):
    now = time.perf_counter()
    if now - self.last_time < self.every_secs and step < self.num_steps:
      return
    self.last_time = now
    rate = (step - self.start_step) / max(now - self.start_time, 1e-9)
    left = (self.num_steps - step) / rate if rate > 0 else float("inf")
    left_str = str(datetime.timedelta(seconds=round(left))) if math.isfinite(left) else "?"
    logging.info("step %d/%d (%.1f%%)  %.1f steps/s  time left %s  loss %.4f", step,
                 self.num_steps, 100.0 * step / max(self.num_steps, 1), rate, left_str, loss)



def check_finite(losses, first_step, last_checkpoint):
  """Raises NonFiniteLossError naming the first step whose loss in `losses` is NaN or inf.

  `losses[i]` is the loss of training step `first_step + i`.
  """
  losses = np.asarray(losses)
  bad = np.flatnonzero(~np.isfinite(losses))
  if bad.size:
    raise NonFiniteLossError(
        f"non-finite training loss ({losses[bad[0]]}) at step {first_step + bad[0]}; "
        f"stopped. The last good checkpoint is {last_checkpoint}.")


class RunSession:
  """An experiment's run directory while it trains (see `rundir` for the layout).

  Opening a session writes (or checks) the operative config, restores the latest checkpoint
  into `checkpoint` and reads the recorded evaluations. Experiments then `record` each
  evaluation (TensorBoard scalars, then the results line) and `save` a checkpoint after it,
  which is what makes a killed run resumable without losing or repeating an evaluation.
  """

  def __init__(self, workdir, config_str, checkpoint, step_counter, max_to_keep=3):
    os.makedirs(workdir, exist_ok=True)
    rundir.check_or_write_config(workdir, config_str)
    self.workdir = workdir
    self.checkpoint = checkpoint
    self.manager = tf.train.CheckpointManager(
        checkpoint, os.path.join(workdir, rundir.CHECKPOINTS), max_to_keep=max_to_keep,
        step_counter=step_counter)
    if self.manager.latest_checkpoint:
      checkpoint.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
    self.step = int(step_counter.numpy())
    self.results = rundir.read_results(workdir)
    self.done = {r["step"] for r in self.results}
    self.writer = tf.summary.create_file_writer(os.path.join(workdir, rundir.TENSORBOARD))
    if not self.results:
      with self.writer.as_default():
        tf.summary.text("operative_config", _markdown_config(config_str), step=0)
        hparams_lib.write_hparams(config_str)  # TensorBoard's HPARAMS tab, across a sweep
    if self.step:
      logging.info("Resumed %s at step %d (%d evaluations recorded).", workdir, self.step,
                   len(self.results))

  def has_embeddings(self):
    return os.path.exists(os.path.join(self.workdir, rundir.EMBEDDINGS))

  def finished(self, num_steps, with_embeddings=True):
    """Whether the run reached `num_steps` with its last evaluation (and embeddings)."""
    done = self.step == num_steps and num_steps in self.done
    if with_embeddings:
      done = done and self.has_embeddings()
    if done:
      logging.info("%s: the run is already finished (step %d); nothing to do.", self.workdir,
                   self.step)
    return done

  def record(self, record, scalars):
    """Writes `record`'s `scalars` to TensorBoard, then appends `record` to results.jsonl."""
    step = record["step"]
    with self.writer.as_default(step=step):
      for key in scalars:
        if key in record:
          tf.summary.scalar(key, record[key])
    self.writer.flush()
    rundir.append_result(self.workdir, record)
    self.results.append(record)
    self.done.add(step)

  def save(self, step):
    self.manager.save(checkpoint_number=step)

  @property
  def latest_checkpoint(self):
    return self.manager.latest_checkpoint

  def close(self):
    self.writer.close()


def _markdown_config(config_str):
  """Gin config as markdown for TensorBoard's text plugin (indented: shown verbatim)."""
  return "\n".join("    " + line for line in config_str.splitlines())
