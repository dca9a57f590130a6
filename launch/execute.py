"""Executing one run of a sweep: its command line, a child process that dies with the
launcher, its log and its one-line error.

A sweep killed with SIGKILL cannot stop its children itself: each child asks the kernel
(prctl PR_SET_PDEATHSIG) to be sent SIGTERM when its parent dies, which the train command
handles as Ctrl-C (it stops and says how to resume). And a run directory is locked by the
process working in it, so a re-run sweep cannot start a second process on a busy workdir.
"""

import ctypes
import os
import re
import shlex
import signal
import subprocess
import sys
import time

_PR_SET_PDEATHSIG = 1


def _die_with_parent():
  """In the child, before exec: ask for SIGTERM when the launching process dies (Linux)."""
  try:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
  except (OSError, AttributeError):
    pass  # not Linux: Ctrl-C and SIGTERM of the launcher still stop its runs


def run_env(gpu, threads, sharing_gpu):
  """The environment of a run: its GPU and thread counts."""
  env = dict(os.environ)
  if gpu is not None:
    env["CUDA_VISIBLE_DEVICES"] = gpu
    if sharing_gpu:
      env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
  if threads > 0:
    for key in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
      env[key] = str(threads)
  return env


def shell_join(args):
  """A command line to paste into a POSIX shell, quoted readably."""
  def quote(arg):
    if re.fullmatch(r"[A-Za-z0-9_./=:,+@%-]+", arg):
      return arg
    if not re.search(r'["$`\\!]', arg):
      return f'"{arg}"'
    return shlex.quote(arg)
  return " ".join(quote(a) for a in args)


def execute(train_args, log_path, env=None, on_start=None):
  """Runs `python -m mi_repr_tf.train *train_args`, appending its output to `log_path`.

  Returns (exit code, seconds, the attempt's last line starting with 'error:' or ''). A
  negative exit code -N means the run was killed by signal N. The interpreter is this
  process's own, so on a Ray worker it is the worker's. `on_start(proc)` is called with the
  child process once it runs (the local launcher keeps them to stop them on Ctrl-C).
  """
  os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
  cmd = [sys.executable, "-m", "mi_repr_tf.train", *train_args]
  t0 = time.time()
  with open(log_path, "a") as log:
    log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} on {os.uname().nodename}: "
              f"{shell_join(cmd)}\n")
    log.flush()
    offset = log.tell()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                            preexec_fn=_die_with_parent)
    if on_start is not None:
      on_start(proc)
    try:
      code = proc.wait()
    except BaseException:
      proc.terminate()  # the launcher is stopping: do not leave the run behind
      proc.wait()
      raise
  return code, time.time() - t0, error_line(log_path, offset)


def error_line(log_path, offset=0):
  """The last 'error: ...' line after byte `offset` of a log (the train CLI's one-line
  errors), else the last exception line (a crash), else ''."""
  try:
    with open(log_path, "rb") as f:
      f.seek(offset)
      lines = f.read().decode(errors="replace").splitlines()
  except FileNotFoundError:
    return ""
  errors = [line for line in lines if line.startswith("error:")]
  if not errors:  # a crash: the exception's own line, e.g. "TypeError: ..."
    errors = [line.strip() for line in lines
              if re.match(r"\s*[\w.]*(Error|Exception|Interrupt)\b", line)]
  return errors[-1] if errors else ""
