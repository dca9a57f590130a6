"""Pieces shared by every experiment's training loop: evaluation schedule, console progress,
and the check for a non-finite loss."""

import datetime
import math
import time

from absl import logging
import numpy as np

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
