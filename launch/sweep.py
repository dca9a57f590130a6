r"""Runs a study of the paper (experiments x estimators x seeds) as many ordinary runs.

    python -m launch.sweep --sweep=critic_study --runs=runs/critic_study [--seeds=20] \
        [--gin_param="train.num_steps=2000" ...] [--workers=2] [--gpus=0,1 | --gpus=all] \
        [--only=REGEX] [--print_only] [--ray_address=local|auto|HOST:PORT]

Every run is `python -m mi_repr_tf.train --gin_file=... --gin_param=... --workdir=RUNS/NAME`
(the studies are defined in `mi_repr_tf/studies.py`); its console output goes to
RUNS/logs/NAME.log. The --gin_param bindings are added to every run's command, after the
study's own, so they are part of each run's operative config; RUNS/sweep.json records the
study and these bindings, and a later call on the same folder must pass the same ones.

- Print-only: --print_only lists every run with its status and command, and runs nothing.
- Resumable: a finished run is skipped; an interrupted one (killed, machine lost) resumes
  from its last checkpoint, because that is what the train command does in its workdir.
  Re-running the same sweep command is how a sweep is continued.
- Parallel: --workers processes at a time on this machine. With --gpus=0,1 (or all) each
  worker owns one GPU through CUDA_VISIBLE_DEVICES (workers default to one per GPU).
- Failures: a run that fails (non-zero exit, killed) is reported with its log path and the
  others go on; the sweep exits 1 if any run failed.
- Ray: --ray_address=local starts a local Ray instance (--workers CPUs); any other address
  (auto, HOST:PORT, ray://HOST:PORT) connects to an existing cluster, one task per run with
  --cpus_per_run CPUs and --gpus_per_run GPUs. Every node needs this package installed and
  the runs folder and gin files at the same paths (a shared file system). Ray is the
  optional extra `ray`: pip install -e ".[ray]". A cluster started with `ray start` (Ray
  2.60) requires its token: run the sweep with RAY_AUTH_MODE=token (token in
  ~/.ray/auth_token or RAY_AUTH_TOKEN).
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

from absl import app
from absl import flags

from launch import execute as execute_lib
from mi_repr_tf import rundir
from mi_repr_tf import studies
from mi_repr_tf.errors import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFEST = "sweep.json"
LOGS = "logs"

FLAGS = flags.FLAGS


def define_flags():
  """The command line's flags (defined only when run as a program: absl flags are global,
  and mi_repr_tf.train defines some of the same names)."""
  flags.DEFINE_string("sweep", None, "Study to run: one of " + ", ".join(sorted(studies.STUDIES)))
  flags.DEFINE_string("runs", None, "Sweep folder: one workdir per run, logs/ and sweep.json.")
  flags.DEFINE_integer("seeds", studies.NUM_SEEDS, "Seeds 0 .. N-1 per configuration.")
  flags.DEFINE_multi_string("gin_param", [], "Gin binding added to every run, e.g. "
                            "\"train.num_steps=2000\" or \"dataset.name='fashion_mnist'\".")
  flags.DEFINE_integer("workers", 0, "Runs at a time (0: one per GPU with --gpus, else 1; "
                       "with Ray: no limit beyond the cluster's resources).")
  flags.DEFINE_string("gpus", "", "GPU ids for local workers, e.g. '0,1', or 'all'; each "
                      "worker gets one through CUDA_VISIBLE_DEVICES. Empty: leave it alone.")
  flags.DEFINE_integer("threads_per_run", 0, "If > 0: TensorFlow and OpenMP threads per run "
                       "(TF_NUM_INTRAOP_THREADS, ...); 0 leaves TensorFlow's default.")
  flags.DEFINE_list("estimators", [], "Registered estimators to sweep instead of the "
                    "study's own (nce, nwj; staircase: every registered one), "
                    "e.g. 'nce,nwj,smile'.")
  flags.DEFINE_string("only", None, "Only the runs whose name matches this regular expression.")
  flags.DEFINE_boolean("print_only", False,
                       "List the runs, their status and commands; run nothing.")
  flags.DEFINE_string("ray_address", "", "Run on Ray: 'local' starts a local instance; "
                      "'auto', 'HOST:PORT' or 'ray://HOST:PORT' connects to a cluster.")
  flags.DEFINE_float("cpus_per_run", 1.0, "Ray: CPUs reserved per run.")
  flags.DEFINE_float("gpus_per_run", 0.0, "Ray: GPUs reserved per run.")


class Console:
  """Thread-safe progress lines, numbered like `[ 3/18]`."""

  def __init__(self, total):
    self.width = len(str(total))
    self.total = total
    self.lock = threading.Lock()

  def say(self, index, text):
    with self.lock:
      print(f"[{index + 1:>{self.width}}/{self.total}] {text}", flush=True)


# --------------------------------------------------------------------------- planning

def select_runs(runs, only):
  if not only:
    return runs
  pattern = re.compile(only)
  chosen = [r for r in runs if pattern.search(r.name)]
  if not chosen:
    raise ConfigError(f"--only={only!r} matches none of the {len(runs)} runs")
  return chosen


def parse_gpus(spec):
  """GPU ids from '0,1' or 'all' (counted with nvidia-smi); [] for ''."""
  if not spec:
    return []
  if spec == "all":
    try:
      out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
      raise ConfigError(f"--gpus=all: cannot list GPUs with nvidia-smi ({e})") from e
    count = sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))
    if not count:
      raise ConfigError("--gpus=all: nvidia-smi lists no GPU")
    return [str(i) for i in range(count)]
  gpus = [g.strip() for g in spec.split(",") if g.strip()]
  if not all(g.isdigit() for g in gpus):
    raise ConfigError(f"--gpus={spec!r} is not valid; give ids like '0,1' or 'all'")
  return gpus


def update_manifest(folder, name, extra_bindings, runs):
  """Records the sweep in folder/sweep.json; refuses a folder holding another sweep."""
  path = os.path.join(folder, MANIFEST)
  manifest = {"sweep": name, "gin_params": list(extra_bindings), "runs": {}}
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    if old.get("sweep") != name or old.get("gin_params") != list(extra_bindings):
      raise ConfigError(
          f"--runs={folder!r} holds the sweep {old.get('sweep')!r} with --gin_param "
          f"{old.get('gin_params')}; continue it with the same --sweep and --gin_param values, "
          "or choose another --runs folder")
    manifest["runs"] = old.get("runs", {})
  for run in runs:
    manifest["runs"][run.name] = run.to_json()
  os.makedirs(folder, exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(manifest, f, indent=2)
  os.replace(tmp, path)


def plan(runs, folder):
  """[(index, run, workdir, status)] for every run of the sweep."""
  planned = []
  for i, run in enumerate(runs):
    workdir = os.path.join(folder, run.name)
    planned.append((i, run, workdir, rundir.run_status(workdir)))
  return planned


def print_plan(planned, folder):
  for i, run, workdir, status in planned:
    args = run.train_args(workdir, REPO)
    command = execute_lib.shell_join(["python", "-m", "mi_repr_tf.train", *args])
    extra = f", {rundir.resume_point(workdir)}" if status == rundir.INTERRUPTED else ""
    print(f"[{i}] {run.name} ({status}{extra})\n    {command}")
  counts = {s: sum(1 for p in planned if p[3] == s)
            for s in (rundir.FINISHED, rundir.INTERRUPTED, rundir.NEW)}
  print(f"{len(planned)} runs in {folder}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))


# --------------------------------------------------------------------------- executing

def _describe(status, workdir):
  if status == rundir.INTERRUPTED:
    return f"resuming ({rundir.resume_point(workdir)})"
  return "new"


def _report(console, index, name, code, seconds, error, log_path, workdir, where=""):
  """Prints the outcome of one run; returns True if it succeeded."""
  if code == 0:
    console.say(index, f"done   {name} in {seconds:.1f} s ({rundir.run_status(workdir)})"
                f"{where}")
    return True
  if code < 0:
    try:
      why = f"killed by {signal.Signals(-code).name}"
    except ValueError:
      why = f"killed by signal {-code}"
  else:
    why = f"exit {code}"
  console.say(index, f"FAILED {name} ({why}) after {seconds:.1f} s{where}"
              + (f": {error}" if error else "") + f"\n        log: {log_path}")
  return False


def run_local(todo, folder, console, workers, gpus, threads):
  """Runs `todo` with `workers` processes at a time; returns the names of failed runs."""
  pending = list(todo)
  lock = threading.Lock()
  failed, children = [], set()
  stopping = threading.Event()

  def worker(slot):
    gpu = gpus[slot % len(gpus)] if gpus else None
    env = execute_lib.run_env(gpu, threads, sharing_gpu=bool(gpus) and workers > len(gpus))
    where = f" [gpu {gpu}]" if gpu is not None else ""
    while not stopping.is_set():
      with lock:
        if not pending:
          return
        index, run, workdir, status = pending.pop(0)
      log_path = os.path.join(folder, LOGS, run.name + ".log")
      console.say(index, f"start  {run.name}: {_describe(status, workdir)}{where}")

      def started(proc):
        with lock:
          children.add(proc)
      code, seconds, error = execute_lib.execute(run.train_args(workdir, REPO), log_path, env,
                                               on_start=started)
      with lock:
        children.difference_update([c for c in children if c.poll() is not None])
      if stopping.is_set():
        return
      if not _report(console, index, run.name, code, seconds, error, log_path, workdir, where):
        with lock:
          failed.append(run.name)

  threads_ = [threading.Thread(target=worker, args=(slot,), daemon=True)
              for slot in range(workers)]
  for t in threads_:
    t.start()
  try:
    while any(t.is_alive() for t in threads_):
      for t in threads_:
        t.join(timeout=0.2)
  except KeyboardInterrupt:
    stopping.set()
    with lock:
      for proc in children:  # only the runs this sweep started
        if proc.poll() is None:
          proc.terminate()
    print("sweep interrupted: the runs that were going stopped; run the same command again "
          "to resume them", flush=True)
    raise
  return failed


def run_ray(todo, folder, console, address, workers, cpus_per_run, gpus_per_run):
  """Runs `todo` as Ray tasks; returns the names of failed runs."""
  try:
    import ray  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ConfigError("--ray_address needs Ray: pip install -e \".[ray]\"") from e
  import launch  # pylint: disable=g-import-not-at-top
  runtime_env = {"py_modules": [launch]}  # the workers import launch.execute from it
  if address == "local":
    ray.init(address="local", num_cpus=workers or os.cpu_count(), include_dashboard=False,
             log_to_driver=False, runtime_env=runtime_env)
  else:
    try:
      ray.init(address=address, log_to_driver=False, runtime_env=runtime_env)
    except (ConnectionError, RuntimeError) as e:
      raise ConfigError(
          f"--ray_address={address!r}: cannot connect to a Ray cluster ("
          f"{str(e).splitlines()[0][:200]}). A cluster started with `ray start` uses token "
          "authentication by default (Ray 2.60): run the sweep with RAY_AUTH_MODE=token and "
          "the cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN") from e
  resources = ray.cluster_resources()
  print(f"Ray: {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs "
        f"on {len(ray.nodes())} node(s)", flush=True)
  task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run,
                    max_retries=0)(execute_lib.execute)
  limit = workers if (workers and address != "local") else len(todo)
  queue, in_flight, failed = list(todo), {}, []
  try:
    while queue or in_flight:
      while queue and len(in_flight) < limit:
        index, run, workdir, status = queue.pop(0)
        log_path = os.path.join(folder, LOGS, run.name + ".log")
        console.say(index, f"submit {run.name}: {_describe(status, workdir)}")
        ref = task.remote(run.train_args(workdir, REPO), log_path)
        in_flight[ref] = (index, run, workdir, log_path)
      done, _ = ray.wait(list(in_flight), num_returns=1)
      index, run, workdir, log_path = in_flight.pop(done[0])
      try:
        code, seconds, error = ray.get(done[0])
      except ray.exceptions.RayError as e:
        code, seconds, error = 1, 0.0, f"error: Ray task failed: {str(e).splitlines()[0]}"
      if not _report(console, index, run.name, code, seconds, error, log_path, workdir,
                     " [ray]"):
        failed.append(run.name)
  finally:
    ray.shutdown()
  return failed


# --------------------------------------------------------------------------- main

def _stop(signum, frame):
  del frame
  raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  signal.signal(signal.SIGTERM, _stop)  # stop the runs this sweep started, as Ctrl-C does
  try:
    if not FLAGS.sweep or not FLAGS.runs:
      raise ConfigError("--sweep and --runs are required")
    folder = os.path.abspath(FLAGS.runs)
    study = studies.study(FLAGS.sweep, FLAGS.seeds, FLAGS.gin_param, FLAGS.estimators)
    studies.check_gin_files(study, REPO)
    runs = select_runs(study, FLAGS.only)
    gpus = parse_gpus(FLAGS.gpus)
    workers = FLAGS.workers or (len(gpus) if gpus else 1)
    if workers < 0:
      raise ConfigError(f"--workers={FLAGS.workers} is not valid; it must be >= 0")
    planned = plan(runs, folder)
    if FLAGS.print_only:
      print_plan(planned, folder)
      return 0
    # The whole study, --only or not: the report lists the runs that never started as missing.
    update_manifest(folder, FLAGS.sweep, FLAGS.gin_param, study)
    todo = [p for p in planned if p[3] != rundir.FINISHED]
    console = Console(len(runs))
    print(f"sweep {FLAGS.sweep}: {len(runs)} runs in {folder}; "
          f"{len(runs) - len(todo)} already finished, {len(todo)} to run", flush=True)
    t0 = time.time()
    if FLAGS.ray_address:
      failed = run_ray(todo, folder, console, FLAGS.ray_address, FLAGS.workers,
                       FLAGS.cpus_per_run, FLAGS.gpus_per_run)
    else:
      failed = run_local(todo, folder, console, workers, gpus, FLAGS.threads_per_run)
  except ConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    return 130
  print(f"sweep {FLAGS.sweep}: {len(todo) - len(failed)} run(s) completed, {len(failed)} "
        f"failed, {len(runs) - len(todo)} were already finished ({time.time() - t0:.1f} s)",
        flush=True)
  if failed:
    print("failed: " + ", ".join(failed) + f" (logs in {os.path.join(folder, LOGS)}); "
          "run the same command again to retry them", flush=True)
    return 1
  return 0


if __name__ == "__main__":
  define_flags()
  app.run(main)
