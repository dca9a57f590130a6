"""The run controller: the one training loop every experiment goes through.

An experiment (see `experiments/`) supplies only what is its own:
- `__init__(settings, strategy)`: validate its configuration, build its models; nothing is
  written yet. It exposes `checkpoint` (a dict of trackables), `step_counter` (a variable
  holding the step) and `dataset` (an ImageDataset for the pixel baseline, or None);
- `train(step, n)`: train steps step + 1 .. step + n; returns {name: array of losses};
- `initial_losses(step)`: the same losses measured without training (step 0, or a resume
  exactly at an unrecorded evaluation);
- `measure(step)`: a `Measurement` (numbers, histograms, embeddings for the probe or None).

The controller owns everything else, for every experiment: seeding and op determinism, the
run directory (`session.Session`: lock, configuration check, repair, checkpoint restore,
TensorBoard, results), the evaluation schedule, the mean losses between evaluations, the
non-finite check, console progress, the linear probe on the embeddings (in a background
thread, its inputs kept in pending/ until recorded), the pixel baseline, a checkpoint after
each evaluation, and the resume rules: a killed run redoes at most the steps since the last
evaluation, identically, and never loses or repeats an evaluation.
"""

import collections
from concurrent import futures
import dataclasses
import datetime
import hashlib
import math
import os
import time

from absl import logging
import gin
import keras
import numpy as np
import tensorflow as tf

from mi_repr_tf import distribute as distribute_lib
from mi_repr_tf import evaluation
from mi_repr_tf import registry
from mi_repr_tf import rundir
from mi_repr_tf import session as session_lib
from mi_repr_tf.errors import ConfigError, NonFiniteLossError, check_int


@dataclasses.dataclass(frozen=True)
class Settings:
  """The settings every experiment shares (gin namespace `run`)."""
  experiment: str
  experiment_id: str
  seed: int
  num_steps: int
  eval_every: int
  steps_per_loop: int
  jit_compile: bool
  pixel_baseline: bool
  dataset_override: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Measurement:
  """What an experiment measures at one evaluation."""
  numbers: dict  # JSON-ready values for results.jsonl (numbers go to TensorBoard too)
  histograms: dict = dataclasses.field(default_factory=dict)  # name -> array (TensorBoard)
  embeddings: dict = None  # train/test embeddings and labels for the probe, or None


class Interrupted(Exception):
  """The user stopped the run (Ctrl-C); the message says how to resume."""


@gin.configurable("run")
def settings(experiment="two_view", experiment_id=None, seed=0, num_steps=21000,
             eval_every=1000, steps_per_loop=100, jit_compile=True, pixel_baseline=True):
  """The shared settings of a run.

  Args:
    experiment: the training code, a registered experiment ('two_view', 'adversarial',
      'gaussian', 'staircase').
    experiment_id: which experiment of the paper the run belongs to ('E1'-'E7' of SPEC.md)
      or a new study's name ('staircase'); the report draws its figures from it.
    seed: seeds initialisation, batch order, noise and the probe.
    num_steps: training steps (the adversarial experiment counts encoder steps).
    eval_every: evaluate every this many steps (and at step 0 and at the end).
    steps_per_loop: training steps per compiled call (and how often the loss is checked).
    jit_compile: compile training steps and evaluation passes with XLA.
    pixel_baseline: for image experiments, also probe the raw pixels of x_top once.
  """
  registry.get("experiment", experiment, "run.experiment")
  if experiment_id is not None and not isinstance(experiment_id, str):
    raise ConfigError(f"run.experiment_id={experiment_id!r} is not valid; it must be a name "
                      "such as 'E4'")
  check_int("run.seed", seed, 0)
  check_int("run.num_steps", num_steps, 0)
  check_int("run.eval_every", eval_every, 1)
  check_int("run.steps_per_loop", steps_per_loop, 1)
  return Settings(experiment, experiment_id, seed, num_steps, eval_every, steps_per_loop,
                  bool(jit_compile), bool(pixel_baseline))


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

  def update(self, step, name, loss):
    now = time.perf_counter()
    if now - self.last_time < self.every_secs and step < self.num_steps:
      return
    self.last_time = now
    rate = (step - self.start_step) / max(now - self.start_time, 1e-9)
    left = (self.num_steps - step) / rate if rate > 0 else float("inf")
    left_str = str(datetime.timedelta(seconds=round(left))) if math.isfinite(left) else "?"
    logging.info("step %d/%d (%.1f%%)  %.1f steps/s  time left %s  %s %.4f", step,
                 self.num_steps, 100.0 * step / max(self.num_steps, 1), rate, left_str, name,
                 loss)


def check_finite(losses, first_step, last_checkpoint, num_steps=None):
  """Raises NonFiniteLossError naming the first non-finite loss of {name: array}.

  An array of `num_steps` values holds one value per step from `first_step` on; others (e.g.
  several classifier updates per step) are named by the range of steps.
  """
  for name, values in losses.items():
    values = np.asarray(values)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
      where = (f"at step {first_step + bad[0]}" if num_steps in (None, len(values)) else
               f"in steps {first_step}-{first_step + num_steps - 1}")
      raise NonFiniteLossError(
          f"non-finite training loss {name} ({values[bad[0]]}) {where}; stopped. The last "
          f"good checkpoint is {last_checkpoint}.")


def run(workdir, log_every_secs=10.0, async_probe=True):
  """Builds the configured experiment and runs it in `workdir`; returns its records."""
  shared = settings()
  # The data of a resumed run are those of its first start (e.g. the offline MNIST subset).
  first = _first_dataset(workdir)
  if first is not None:
    shared = dataclasses.replace(shared, dataset_override=dict(first))
  strategy = distribute_lib.get_strategy()  # before any op: it may split the CPU
  keras.utils.set_random_seed(shared.seed)
  tf.config.experimental.enable_op_determinism()
  experiment = registry.get("experiment", shared.experiment, "run.experiment")(shared, strategy)
  config_str = gin.operative_config_str()
  chief = distribute_lib.is_chief(strategy)
  if not chief:  # other workers keep their checkpoints apart (every worker must save)
    workdir = f"{workdir}/.worker-{distribute_lib.task_id(strategy)}"
  session = session_lib.Session.open(workdir, config_str)
  try:
    controller = Controller(experiment, shared, session, chief, log_every_secs, async_probe)
    controller.start(config_str)
  except ConfigError:
    session.abandon()  # removes the workdir only if this run created it
    raise
  except BaseException:
    session.close()
    raise
  try:
    return controller.run()
  finally:
    session.close()


def load_dataset(shared):
  """The experiment's dataset: the one its first start used, when it is resumed."""
  from mi_repr_tf import data as data_lib  # pylint: disable=g-import-not-at-top
  first = shared.dataset_override.get("name")
  with data_lib.forced_dataset(first):
    dataset = data_lib.load_dataset()
  if first is not None and dataset.name != first:
    raise ConfigError(f"this run used the dataset {first!r} at its first start, but "
                      f"{dataset.name!r} now ({dataset.source}); make {first!r} available "
                      "again or start a new --workdir")
  _check_same_data(shared.dataset_override, dataset)
  return dataset


def fingerprint(dataset):
  """sha256 of the images and labels of both splits: the data's identity in dataset.json."""
  digest = hashlib.sha256()
  for split in (dataset.train, dataset.test):
    for array in (split.images, split.labels):
      array = np.ascontiguousarray(array)
      digest.update(f"{array.dtype.str}{array.shape}".encode())
      digest.update(array.data)
  return digest.hexdigest()


def _check_same_data(first, dataset):
  """Refuses data other than what dataset.json recorded at the run's first start (older
  runs recorded no sizes or fingerprint: what they recorded is checked)."""
  now = {"num_train": len(dataset.train), "num_test": len(dataset.test)}
  if "fingerprint" in first:
    now["fingerprint"] = fingerprint(dataset)
  changed = [k for k, v in now.items() if k in first and first[k] != v]
  if changed:
    raise ConfigError(
        f"this run used {first['name']!r} from {first.get('source')} at its first start "
        f"({first.get('num_train')} training, {first.get('num_test')} test images), but "
        f"{dataset.source} now has other data ({len(dataset.train)} training, "
        f"{len(dataset.test)} test images; changed: {', '.join(changed)}): its results would "
        "mix two datasets; restore the original files or start a new --workdir")


def _first_dataset(workdir):
  """What dataset.json of an existing run says (checked before any work is done)."""
  if not os.path.isdir(workdir):
    if os.path.exists(workdir):
      raise ConfigError(f"--workdir={workdir!r} is a file, not a directory")
    return None
  first = rundir.read_json(workdir, rundir.DATASET)
  if first is not None and not (isinstance(first, dict) and isinstance(first.get("name"), str)):
    raise rundir.RunDirError(f"{os.path.join(workdir, rundir.DATASET)} does not describe a "
                             "dataset (no 'name'); restore it or start a new --workdir")
  return first


class Controller:
  """Runs one experiment in one open session (see the module docstring)."""

  def __init__(self, experiment, shared, session, chief, log_every_secs, async_probe):
    self.experiment = experiment
    self.shared = shared
    self.session = session
    self.chief = chief
    self.log_every_secs = log_every_secs
    self.probes = futures.ThreadPoolExecutor(1) if async_probe and chief else None
    self.in_flight = collections.deque()  # (record, histograms, embeddings, future)
    self.schedule = eval_steps(shared.num_steps, shared.eval_every)

  def start(self, config_str):
    """Restores the run and writes what its first start owes (dataset, pixel baseline)."""
    exp, workdir = self.experiment, self.session.workdir
    self.session.restore(tf.train.Checkpoint(**exp.checkpoint), exp.step_counter,
                         self.schedule, config_str)
    dataset = getattr(exp, "dataset", None)
    if not self.chief or dataset is None:
      return
    if rundir.read_json(workdir, rundir.DATASET) is None:
      rundir.write_json(workdir, rundir.DATASET, {
          "name": dataset.name, "source": getattr(dataset, "source", ""),
          "num_train": len(dataset.train), "num_test": len(dataset.test),
          "fingerprint": fingerprint(dataset)})
    if self.shared.pixel_baseline and rundir.read_json(workdir, rundir.BASELINE) is None:
      t0 = time.perf_counter()
      accuracy = evaluation.pixel_baseline(dataset, self.shared.seed)
      rundir.write_json(workdir, rundir.BASELINE, {"pixel_accuracy": accuracy})
      logging.info("Linear probe on raw x_top pixels: accuracy %.4f (%.1f s)", accuracy,
                   time.perf_counter() - t0)

  def run(self):
    session = self.session
    if session.finished(self.shared.num_steps):
      logging.info("%s: the run is already finished (step %d); nothing to do.",
                   session.workdir, session.step)
      return session.results
    for step, record, histograms, embeddings in rundir.read_pending(session.workdir):
      if step in session.done:  # recorded just before the kill
        rundir.remove_pending(session.workdir, step)
      else:
        self._finish(record, histograms, embeddings, self._probe(embeddings))
    try:
      self._loop()
    except KeyboardInterrupt:
      self._stop_probes(wait=False)
      raise Interrupted(f"interrupted at step {int(self.experiment.step_counter.numpy())}; "
                        f"the last checkpoint is {session.latest_checkpoint}. Run the same "
                        "command again to resume from it.") from None
    except NonFiniteLossError:
      self._stop_probes(wait=True)  # the evaluations before the failure are valid
      raise
    self._stop_probes(wait=True)
    return session.results

  def _loop(self):
    step, exp, session = self.session.step, self.experiment, self.session
    progress = Progress(step, self.shared.num_steps, self.log_every_secs)
    interval = collections.defaultdict(list)
    for next_eval in [s for s in self.schedule if s >= step]:
      while step < next_eval:
        n = min(self.shared.steps_per_loop, next_eval - step)
        losses = exp.train(step, n)
        check_finite(losses, step + 1, session.latest_checkpoint, n)
        step += n
        for name, values in losses.items():
          interval[name].extend(np.asarray(values, np.float64).tolist())
        name = next(iter(losses))
        progress.update(step, name, float(np.asarray(losses[name])[-1]))
        self._drain(wait=False)
      if not self.chief or step in session.done:
        interval.clear()  # recorded before the run was killed: only the checkpoint is due
        session.save(step)
        continue
      if not interval:  # step 0, or resumed exactly at an unrecorded evaluation
        interval.update({k: [float(v)] for k, v in exp.initial_losses(step).items()})
      self._evaluate(step, {k: float(np.mean(v)) for k, v in interval.items()})
      interval.clear()

  def _evaluate(self, step, losses):
    measurement = self.experiment.measure(step)
    record = {"step": step, **losses, **measurement.numbers}
    embeddings = measurement.embeddings
    if embeddings is None or self.probes is None:
      probe = self._probe(embeddings) if embeddings is not None else None
      self._finish(record, measurement.histograms, embeddings, probe)
      self.session.save(step)
      return
    # The probe's inputs go to disk before the checkpoint, so a run killed while the probe
    # runs finishes it on resume; the training goes on meanwhile.
    rundir.write_pending(self.session.workdir, step, record, measurement.histograms,
                         embeddings)
    self.session.save(step)
    self.in_flight.append((record, measurement.histograms, embeddings,
                           self.probes.submit(self._probe, embeddings)))

  def _probe(self, embeddings):
    t0 = time.perf_counter()
    accuracy = evaluation.probe(embeddings, self.shared.seed)
    return accuracy, time.perf_counter() - t0

  def _finish(self, record, histograms, embeddings, probe):
    """Completes an evaluation: at the last step embeddings.npz, then TensorBoard and the
    results line; then its pending inputs are dropped."""
    step = record["step"]
    if probe is not None:
      record["accuracy"] = probe[0]
      record.setdefault("eval_seconds", {})["probe"] = probe[1]
    if step == self.shared.num_steps and embeddings is not None:
      rundir.write_embeddings(self.session.workdir, embeddings)
    self.session.record(record, histograms)
    rundir.remove_pending(self.session.workdir, step)
    shown = {k: v for k, v in record.items()
             if k != "step" and isinstance(v, float) and not isinstance(v, bool)}
    logging.info("eval step %d: %s", step, "  ".join(f"{k} {v:.4f}" for k, v in shown.items()))

  def _drain(self, wait):
    while self.in_flight and (wait or self.in_flight[0][3].done()):
      record, histograms, embeddings, future = self.in_flight.popleft()
      self._finish(record, histograms, embeddings, future.result())

  def _stop_probes(self, wait):
    if wait:
      self._drain(wait=True)
    if self.probes is not None:
      self.probes.shutdown(wait=wait, cancel_futures=not wait)
