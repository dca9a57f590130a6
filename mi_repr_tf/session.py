"""A run directory while a run works in it: lock, configuration check, checkpoints,
TensorBoard and results (the TensorFlow side of `rundir`; the run controller, `runner`, is its
only user).

`Session.open` is the one place where a run directory is opened, and what it guarantees:
- the directory is locked for this process (a second process is refused, naming the holder);
- its configuration is this run's: written on the first start, compared on every later one.
  A directory that holds run files but no operative_config.gin is refused (deleting the file
  cannot switch the check off);
- results.jsonl is repaired if a kill tore its last line or a line is corrupted: the usable
  lines are kept, the original is kept beside it;
- the latest checkpoint that can be restored is restored; a damaged one is removed with a
  warning and the one before it is used (the steps since are redone, identically);
- an evaluation that the checkpoints are past but results.jsonl lacks is never a silent gap:
  the run restarts from the checkpoint before it and evaluates it again, or, if that
  checkpoint is gone, refuses with an error naming the step.
"""

import difflib
import glob
import os
import re
import shutil

from absl import logging
import tensorflow as tf

from mi_repr_tf import diagnostics as diagnostics_lib
from mi_repr_tf import hparams as hparams_lib
from mi_repr_tf import rundir
from mi_repr_tf.errors import ConfigError

MAX_CHECKPOINTS = 3
_RUN_FILES = (rundir.RESULTS, rundir.CHECKPOINTS, rundir.EMBEDDINGS, rundir.PENDING,
              rundir.TENSORBOARD, rundir.BASELINE, rundir.DATASET)


def make_workdir(workdir):
  """Creates `workdir` (and its parents); returns whether this call created it."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ConfigError(f"--workdir={workdir!r} is a file, not a directory")
  try:
    os.makedirs(os.path.dirname(os.path.abspath(workdir)), exist_ok=True)
    os.mkdir(workdir)
    return True
  except FileExistsError:
    return False
  except OSError as e:
    raise ConfigError(f"--workdir={workdir!r} cannot be created: {e.strerror}") from e


def check_writable(workdir):
  probe = os.path.join(workdir, f".write-test-{os.getpid()}")
  try:
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise ConfigError(f"--workdir={workdir!r} is not writable: {e.strerror}") from e


def check_or_write_config(workdir, config_str):
  """Writes the operative config on a first start; refuses a different or missing one."""
  old = rundir.read_config_text(workdir)
  path = os.path.join(workdir, rundir.CONFIG)
  if old is None:
    present = [name for name in _RUN_FILES if os.path.exists(os.path.join(workdir, name))]
    if present:
      raise rundir.RunDirError(
          f"--workdir={workdir!r} holds a run ({', '.join(present)}) but no {rundir.CONFIG}, "
          "so its configuration cannot be checked; restore the file or choose a new --workdir")
    rundir.write_text(workdir, rundir.CONFIG, config_str)
    return
  if old != config_str:
    diff = "\n".join(difflib.unified_diff(old.splitlines(), config_str.splitlines(),
                                          "existing", "requested", lineterm="", n=0))
    raise ConfigError(
        f"--workdir={workdir!r} holds a run with a different configuration ({path}); "
        f"resume it with the same gin files and bindings, or choose a new --workdir:\n{diff}")


def _checkpoint_steps(directory):
  """{step: checkpoint prefix} of the checkpoints in `directory` (by their index files)."""
  found = {}
  for index in glob.glob(os.path.join(directory, "ckpt-*.index")):
    m = re.fullmatch(r"ckpt-(\d+)\.index", os.path.basename(index))
    if m:
      found[int(m.group(1))] = index[:-len(".index")]
  return dict(sorted(found.items()))


def _remove_checkpoint(prefix):
  for path in glob.glob(prefix + ".*"):
    os.remove(path)


class Session:
  """A locked, checked run directory with its checkpoint manager, TensorBoard writer and
  recorded evaluations. Use `Session.open`; `close` releases the lock."""

  def __init__(self, workdir, lock, created):
    self.workdir = workdir
    self.lock = lock
    self.created = created
    self.manager = None
    self.writer = None
    self.results = []
    self.done = set()
    self.step = 0

  @classmethod
  def open(cls, workdir, config_str):
    """Creates or locks `workdir` and checks its configuration (nothing restored yet)."""
    created = make_workdir(workdir)
    lock = rundir.Lock(workdir)
    lock.acquire()
    session = cls(workdir, lock, created)
    try:
      check_writable(workdir)
      check_or_write_config(workdir, config_str)
    except BaseException:
      session.abandon()
      raise
    return session

  def abandon(self):
    """Releases the directory; removes it if this session created it (nothing that looks
    like a run is left behind by a run that failed before training)."""
    if self.created:
      shutil.rmtree(self.workdir, ignore_errors=True)
    self.lock.release()

  def restore(self, checkpoint, step_counter, eval_steps, config_str):
    """Repairs results.jsonl, restores the right checkpoint and opens TensorBoard.

    `eval_steps`: the steps the run evaluates. Sets `step`, `results` and `done`.
    """
    results, backup = rundir.repair_results(self.workdir)
    if backup:
      logging.warning("%s had unusable lines %s; kept the usable ones (the original is %s).",
                      os.path.join(self.workdir, rundir.RESULTS),
                      [n for n, _ in results.problems] or "(torn last line)", backup)
    self.results, self.done = results.records, set(results.steps)
    pending = set(rundir.pending_steps(self.workdir))
    directory = os.path.join(self.workdir, rundir.CHECKPOINTS)
    restored = self._restore_usable(checkpoint, directory, eval_steps, pending)
    self.manager = tf.train.CheckpointManager(checkpoint, directory,
                                              max_to_keep=MAX_CHECKPOINTS,
                                              step_counter=step_counter)
    self.step = int(step_counter.numpy())
    if restored is not None and self.step != restored:
      raise rundir.RunDirError(f"checkpoint ckpt-{restored} in {directory} holds step "
                               f"{self.step}; the checkpoints do not belong to this run")
    self.writer = tf.summary.create_file_writer(os.path.join(self.workdir,
                                                             rundir.TENSORBOARD))
    if not self.results and not self.step:
      with self.writer.as_default():
        tf.summary.text("operative_config", _markdown_config(config_str), step=0)
        hparams_lib.write_hparams(config_str)  # TensorBoard's HPARAMS tab, across a sweep
    if self.step:
      logging.info("Resumed %s at step %d (%d evaluations recorded).", self.workdir,
                   self.step, len(self.results))

  def _restore_usable(self, checkpoint, directory, eval_steps, pending):
    """Restores the newest usable checkpoint that leaves no evaluation unrecorded.

    Returns its step, or None when there is none (a fresh start).
    """
    candidates = _checkpoint_steps(directory)
    while candidates:
      newest = max(candidates)
      missing = [s for s in eval_steps
                 if s <= newest and s not in self.done and s not in pending]
      if missing:  # restart before the first unrecorded evaluation, and redo it
        usable = [s for s in candidates if s < missing[0] or s == missing[0] == 0]
        if not usable:
          raise rundir.RunDirError(
              f"{self.workdir}: the evaluation at step {missing[0]} is not in "
              f"{rundir.RESULTS} and the checkpoint to redo it from is gone (kept: "
              f"{sorted(candidates)}); continue the run in a new --workdir")
        step = max(usable)
        logging.warning("%s: evaluation at step %d missing from %s; redoing it from the "
                        "checkpoint of step %d.", self.workdir, missing[0], rundir.RESULTS, step)
      else:
        step = newest
      try:
        checkpoint.restore(candidates[step]).assert_existing_objects_matched()
      except (tf.errors.OpError, ValueError, AssertionError) as e:
        logging.warning("Checkpoint %s cannot be restored (%s: %s); removing it and using "
                        "the one before.", candidates[step], type(e).__name__,
                        str(e).splitlines()[0][:200])
        _remove_checkpoint(candidates.pop(step))
        continue
      for later in [s for s in candidates if s > step]:  # redone identically from here
        _remove_checkpoint(candidates.pop(later))
      tf.compat.v1.train.update_checkpoint_state(
          directory, candidates[step], all_model_checkpoint_paths=list(candidates.values()))
      return step
    state = os.path.join(directory, "checkpoint")
    if os.path.exists(state):  # names checkpoints that are all gone: start afresh
      os.remove(state)
    return None

  def finished(self, num_steps):
    return (self.step == num_steps and num_steps in self.done
            and not rundir.pending_steps(self.workdir))

  def record(self, record, histograms):
    """TensorBoard (the record's numbers and `histograms`), then the results line."""
    step = record["step"]
    with self.writer.as_default(step=step):
      for name, values in histograms.items():
        tf.summary.histogram(name, values)
      for key, value in record.items():
        if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
          tf.summary.scalar(key, value)
        elif key.endswith("_percentiles") and len(value) == len(diagnostics_lib.PERCENTILES):
          for q, v in zip(diagnostics_lib.PERCENTILES, value):
            tf.summary.scalar(f"{key[:-len('_percentiles')]}_p{q}", v)
    self.writer.flush()
    rundir.append_result(self.workdir, record)
    self.results = sorted(self.results + [record], key=lambda r: r["step"])
    self.done.add(step)

  def save(self, step):
    self.manager.save(checkpoint_number=step)

  @property
  def latest_checkpoint(self):
    return self.manager.latest_checkpoint if self.manager else None

  def close(self):
    if self.writer is not None:
      self.writer.close()
    self.lock.release()


def _markdown_config(config_str):
  """Gin config as markdown for TensorBoard's text plugin (indented: shown verbatim)."""
  return "\n".join("    " + line for line in config_str.splitlines())
