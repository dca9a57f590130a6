"""The run directory: a self-describing record of one run.

    operative_config.gin   the gin configuration the run used
    results.jsonl          one JSON object per evaluation (step, train_loss, test_bound, ...)
    baseline.json          the linear probe on raw pixels of x_top, for comparison
    tensorboard/           TensorBoard event files (scalars, the operative config as text)
    checkpoints/           tf.train checkpoints, one per evaluation step
    embeddings.npz         final g1 embeddings and labels of train and test (no pickles)
    pending/               evaluations whose probe is still running in the background:
                           step-<s>.npz with the record so far and the probe's inputs

Files are replaced atomically (written to a temporary name, then renamed), and a results
line is written with a single `write` followed by fsync, so a killed run leaves either the
whole line or a torn last line, which `read_results` drops.
"""

import difflib
import json
import os

import numpy as np

from mi_repr_tf.errors import ConfigError

CONFIG = "operative_config.gin"
RESULTS = "results.jsonl"
BASELINE = "baseline.json"
EMBEDDINGS = "embeddings.npz"
TENSORBOARD = "tensorboard"
CHECKPOINTS = "checkpoints"
PENDING = "pending"


def _atomic_write(path, write_fn, mode="w"):
  tmp = path + ".tmp"
  with open(tmp, mode) as f:
    write_fn(f)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def check_or_write_config(workdir, config_str):
  """Writes the operative config; a workdir holding a different run's config is an error."""
  path = os.path.join(workdir, CONFIG)
  if os.path.exists(path):
    with open(path) as f:
      old = f.read()
    if old != config_str:
      diff = "\n".join(difflib.unified_diff(old.splitlines(), config_str.splitlines(),
                                            "existing", "requested", lineterm="", n=0))
      raise ConfigError(
          f"--workdir={workdir!r} holds a run with a different configuration ({path}); "
          f"resume it with the same gin files and bindings, or choose a new --workdir:\n{diff}")
    return
  _atomic_write(path, lambda f: f.write(config_str))


def read_results(workdir):
  """The complete evaluation records in results.jsonl, in order; a torn last line is dropped."""
  path = os.path.join(workdir, RESULTS)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    lines = f.read().split("\n")
  records, good_bytes = [], 0
  for line in lines:
    if not line:
      continue
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError:
      break  # a line torn by a killed run: keep what came before it
    good_bytes += len(line) + 1
  if good_bytes != os.path.getsize(path):
    with open(path, "r+") as f:
      f.truncate(good_bytes)
  return records


def append_result(workdir, record):
  """Appends one evaluation record as a JSON line, durably."""
  with open(os.path.join(workdir, RESULTS), "a") as f:
    f.write(json.dumps(record, sort_keys=True) + "\n")
    f.flush()
    os.fsync(f.fileno())


def truncate_results(workdir, records):
  """Rewrites results.jsonl with exactly `records`."""
  _atomic_write(os.path.join(workdir, RESULTS),
                lambda f: f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in records))


def write_json(workdir, name, obj):
  _atomic_write(os.path.join(workdir, name), lambda f: json.dump(obj, f, indent=2,
                                                                sort_keys=True))


def read_json(workdir, name):
  path = os.path.join(workdir, name)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def write_embeddings(workdir, embeddings):
  """Writes embeddings.npz: train/test embeddings and labels, plain arrays (no pickles)."""
  _atomic_write(os.path.join(workdir, EMBEDDINGS),
                lambda f: np.savez(f, **embeddings), mode="wb")


def read_embeddings(workdir):
  with np.load(os.path.join(workdir, EMBEDDINGS), allow_pickle=False) as f:
    return {k: f[k] for k in f.files}


def _pending_path(workdir, step):
  return os.path.join(workdir, PENDING, f"step-{step:09d}.npz")


def write_pending(workdir, step, record, histograms, embeddings):
  """Stores an evaluation whose probe has not finished: the record so far (JSON), the
  TensorBoard histograms and the embeddings the probe will be fit on."""
  os.makedirs(os.path.join(workdir, PENDING), exist_ok=True)
  arrays = {"record": np.array(json.dumps(record, sort_keys=True)), **embeddings,
            **{f"histogram:{k}": np.asarray(v) for k, v in histograms.items()}}
  _atomic_write(_pending_path(workdir, step), lambda f: np.savez(f, **arrays), mode="wb")


def read_pending(workdir):
  """[(step, record, histograms, embeddings)] of the pending evaluations, by step."""
  folder = os.path.join(workdir, PENDING)
  if not os.path.isdir(folder):
    return []
  pending = []
  for name in sorted(os.listdir(folder)):
    if not (name.startswith("step-") and name.endswith(".npz")):
      continue  # a .tmp left by a kill mid-write: the checkpoint after it was never saved
    with np.load(os.path.join(folder, name), allow_pickle=False) as f:
      record = json.loads(str(f["record"]))
      histograms = {k.split(":", 1)[1]: f[k] for k in f.files if k.startswith("histogram:")}
      embeddings = {k: f[k] for k in f.files if k != "record" and not k.startswith("histogram:")}
    pending.append((record["step"], record, histograms, embeddings))
  return pending


def remove_pending(workdir, step):
  path = _pending_path(workdir, step)
  if os.path.exists(path):
    os.remove(path)
