"""The run directory: a self-describing record of one run, and the one API to read it.

    operative_config.gin   the gin configuration the run used
    results.jsonl          one JSON object per evaluation (step, train_loss, test_bound, ...)
    dataset.json           the dataset actually used (e.g. the offline MNIST subset)
    baseline.json          the linear probe on raw pixels of x_top, for comparison
    tensorboard/           TensorBoard event files (scalars, the operative config as text)
    checkpoints/           tf.train checkpoints, one per evaluation step (the last few kept)
    embeddings.npz         final g1 embeddings and labels of train and test (no pickles)
    pending/               evaluations whose probe is still running in the background:
                           step-<s>.npz with the record so far and the probe's inputs
    .lock                  held (flock) by the process working in the directory

Writing: files are replaced atomically (a temporary name, fsync, rename); a results line is
one `write` followed by fsync. At the last step embeddings.npz is written before the results
line, so a run is finished exactly when its last planned evaluation is recorded and nothing
is pending. Reading never modifies anything: `read_results` returns the valid records and
names the lines it could not use; only the run controller repairs a file (`repair_results`,
keeping a copy of the original).

This module is pure Python (no TensorFlow): train, sweep and report all read runs through it.
"""

import dataclasses
import errno
import fcntl
import json
import os
import re
import socket
import sys
import time

import numpy as np

from mi_repr_tf import bindings as bindings_lib
from mi_repr_tf.errors import ConfigError

CONFIG = "operative_config.gin"
RESULTS = "results.jsonl"
DATASET = "dataset.json"
BASELINE = "baseline.json"
EMBEDDINGS = "embeddings.npz"
TENSORBOARD = "tensorboard"
CHECKPOINTS = "checkpoints"
PENDING = "pending"
LOCK = ".lock"

FINISHED, INTERRUPTED, NEW = "finished", "interrupted", "new"

# Settings that say where or how a run executes, not what it computes: left out of the
# TensorBoard hparams and of the configuration that the report groups runs by.
_EXECUTION = re.compile(r"(^|\.)(data_dir|download|offline_fallback|jit_compile|steps_per_loop|fuse_steps|"
                        r"log_every_secs|pixel_baseline|async_probe)$|^distribute\.")
# Seeds tell runs of one configuration apart.
_SEED = re.compile(r"(^|\.)\w*seed$")


class RunDirError(ConfigError):
  """A run directory (or one of its files) is unusable; the message names the file."""


def is_execution_setting(key):
  """Whether the binding `key` only says where or how a run executes (not what it computes)."""
  return bool(_EXECUTION.search(key))


def is_seed(key):
  return bool(_SEED.search(key))


# --------------------------------------------------------------------------- writing


def _atomic_write(path, write_fn, mode="w"):
  tmp = f"{path}.tmp-{os.getpid()}"
  try:
    with open(tmp, mode) as f:
      write_fn(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_text(workdir, name, text):
  _atomic_write(os.path.join(workdir, name), lambda f: f.write(text))


def write_json(workdir, name, obj):
  _atomic_write(os.path.join(workdir, name),
                lambda f: json.dump(obj, f, indent=2, sort_keys=True))


def append_result(workdir, record):
  """Appends one evaluation record as a JSON line, durably."""
  line = json.dumps(record, sort_keys=True, allow_nan=True) + "\n"
  with open(os.path.join(workdir, RESULTS), "a") as f:
    f.write(line)
    f.flush()
    os.fsync(f.fileno())


def write_embeddings(workdir, embeddings):
  """Writes embeddings.npz: train/test embeddings and labels, plain arrays (no pickles)."""
  _atomic_write(os.path.join(workdir, EMBEDDINGS),
                lambda f: np.savez(f, **embeddings), mode="wb")


# --------------------------------------------------------------------------- reading


def read_config_text(workdir):
  """The operative config's text, or None if there is none; RunDirError if unreadable."""
  path = os.path.join(workdir, CONFIG)
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
  except FileNotFoundError:
    return None
  except (UnicodeDecodeError, OSError) as e:
    raise RunDirError(f"{path} is not a readable gin config: {e}") from e
  if "\x00" in text:
    raise RunDirError(f"{path} is not a readable gin config: it holds binary data")
  return text


def read_config(workdir):
  """The run's bindings {"selector.param": value} ({} if it has no config)."""
  text = read_config_text(workdir)
  return {} if text is None else bindings_lib.parse_operative_config(text)


def read_json(workdir, name):
  """The JSON object in `name`, None if absent; RunDirError if it is not valid JSON."""
  path = os.path.join(workdir, name)
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    return None
  except (ValueError, UnicodeDecodeError, OSError) as e:
    raise RunDirError(f"{path} is not valid JSON ({e})") from e


def read_embeddings(workdir):
  with np.load(os.path.join(workdir, EMBEDDINGS), allow_pickle=False) as f:
    return {k: f[k] for k in f.files}


@dataclasses.dataclass
class Results:
  """The usable records of results.jsonl (by step) and the lines that were not usable."""
  records: list
  problems: list  # [(line number, reason)]
  torn_tail: bool = False  # the file does not end with a complete line

  @property
  def steps(self):
    return [r["step"] for r in self.records]


def _parse_line(line):
  try:
    record = json.loads(line)
  except ValueError as e:
    return None, f"not JSON ({e})"
  if not isinstance(record, dict):
    return None, f"not a JSON object: {line[:40]!r}"
  step = record.get("step")
  if not isinstance(step, int) or isinstance(step, bool) or step < 0:
    return None, f"no valid 'step' (got {step!r})"
  return record, None


def read_results(workdir):
  """Reads results.jsonl without modifying it: a `Results`.

  Every line that parses as a JSON object with an integer step is kept; the others (a line
  torn by a kill, a corrupted line anywhere) are named in `problems`. A step recorded twice
  keeps its first record and names the second.
  """
  path = os.path.join(workdir, RESULTS)
  try:
    with open(path, "rb") as f:
      data = f.read()
  except FileNotFoundError:
    return Results([], [])
  text = data.decode("utf-8", errors="replace")
  lines = text.split("\n")
  torn = bool(lines[-1])
  records, problems, seen = [], [], set()
  for number, line in enumerate(lines, 1):
    if not line.strip():
      continue
    record, problem = _parse_line(line)
    if problem is None and record["step"] in seen:
      problem = f"step {record['step']} recorded twice"
    if problem is not None:
      problems.append((number, problem))
      continue
    seen.add(record["step"])
    records.append(record)
  return Results(sorted(records, key=lambda r: r["step"]), problems, torn)


def repair_results(workdir):
  """Rewrites results.jsonl with only its usable records, if it has unusable lines.

  The original bytes are kept beside it (results.jsonl.damaged-<time>). Returns
  (Results, path of that copy or None).
  """
  results = read_results(workdir)
  if not results.problems and not results.torn_tail:
    return results, None
  path = os.path.join(workdir, RESULTS)
  backup = f"{path}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
  with open(path, "rb") as src, open(backup, "wb") as dst:
    dst.write(src.read())
  _atomic_write(path, lambda f: f.writelines(json.dumps(r, sort_keys=True) + "\n"
                                            for r in results.records))
  return results, backup


# --------------------------------------------------------------------------- pending probes


def _pending_path(workdir, step):
  return os.path.join(workdir, PENDING, f"step-{step:09d}.npz")


def write_pending(workdir, step, record, histograms, embeddings):
  """Stores an evaluation whose probe has not finished: the record so far (JSON), the
  TensorBoard histograms and the embeddings the probe will be fit on."""
  os.makedirs(os.path.join(workdir, PENDING), exist_ok=True)
  arrays = {"record": np.array(json.dumps(record, sort_keys=True)), **embeddings,
            **{f"histogram:{k}": np.asarray(v) for k, v in histograms.items()}}
  _atomic_write(_pending_path(workdir, step), lambda f: np.savez(f, **arrays), mode="wb")


def pending_steps(workdir):
  folder = os.path.join(workdir, PENDING)
  if not os.path.isdir(folder):
    return []
  return sorted(int(n[5:14]) for n in os.listdir(folder)
                if re.fullmatch(r"step-\d{9}\.npz", n))


def read_pending(workdir):
  """[(step, record, histograms, embeddings)] of the pending evaluations, by step; an
  unreadable file is a RunDirError naming it."""
  pending = []
  for step in pending_steps(workdir):
    path = _pending_path(workdir, step)
    try:
      with np.load(path, allow_pickle=False) as f:
        record = json.loads(str(f["record"]))
        histograms = {k.split(":", 1)[1]: f[k] for k in f.files if k.startswith("histogram:")}
        embeddings = {k: f[k] for k in f.files
                      if k != "record" and not k.startswith("histogram:")}
    except (OSError, ValueError, KeyError, EOFError) as e:
      raise RunDirError(f"{path} is unreadable ({e}); delete it to evaluate step {step} "
                        "again from its checkpoint") from e
    pending.append((step, record, histograms, embeddings))
  return pending


def remove_pending(workdir, step):
  path = _pending_path(workdir, step)
  if os.path.exists(path):
    os.remove(path)


# --------------------------------------------------------------------------- status


def planned_steps(config):
  """The last step a run's config plans (run.num_steps), or None."""
  value = config.get("run.num_steps")
  return value if isinstance(value, int) and not isinstance(value, bool) else None


def run_status(workdir):
  """FINISHED, INTERRUPTED (started, not finished) or NEW (no operative config yet).

  Finished: the last planned evaluation is recorded and no probe is pending. An unreadable
  config counts as interrupted (the train command then says what is wrong).
  """
  if not os.path.isfile(os.path.join(workdir, CONFIG)):
    return NEW
  try:
    last = planned_steps(read_config(workdir))
  except RunDirError:
    return INTERRUPTED
  done = read_results(workdir).steps
  if last is not None and last in done and not pending_steps(workdir):
    return FINISHED
  return INTERRUPTED


def resume_point(workdir):
  """Text saying where an interrupted run stands (its last recorded evaluation)."""
  steps = read_results(workdir).steps
  return "no evaluation yet" if not steps else f"last evaluation at step {steps[-1]}"


# --------------------------------------------------------------------------- the lock


class WorkdirBusy(RunDirError):
  """Another process holds the run directory."""


class Lock:
  """An exclusive lock on a run directory (flock on .lock, released when the process ends).

  The lock file names its holder (pid, host, command) so that a refused process can say
  which process holds the directory.
  """

  def __init__(self, workdir):
    self.path = os.path.join(workdir, LOCK)
    self._fd = None

  def acquire(self):
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      os.close(fd)
      if e.errno not in (errno.EAGAIN, errno.EACCES):
        raise
      raise WorkdirBusy(f"--workdir={os.path.dirname(self.path)!r} is in use by "
                        f"{self.holder()}; wait for it to finish or stop it") from None
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "command": " ".join(sys.argv)[:500],
                             "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
    self._fd = fd
    return self

  def holder(self):
    try:
      with open(self.path) as f:
        info = json.load(f)
      return (f"process {info['pid']} on {info['host']} (since {info['since']}: "
              f"{info['command']})")
    except (OSError, ValueError, KeyError):
      return "another process"

  def release(self):
    if self._fd is not None:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None
