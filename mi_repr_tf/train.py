r"""The command line: parse gin, run the configured experiment through the run controller.

    python -m mi_repr_tf.train --gin_file=gin/critic_mlp.gin \
        [--gin_file=...] [--gin_param="run.seed=1" ...] [--workdir=runs/my_run]

`run.experiment` picks the experiment (two-view by default); `runner` trains and evaluates it
at step 0, every `run.eval_every` steps and at the last step, writing `results.jsonl`,
TensorBoard events, checkpoints and embeddings to the workdir (see `rundir`). Running the
same command on the same workdir resumes it; a finished run is not trained again.

Gin files are code: a gin file may `import` any Python module. Only gin files inside this
project's gin/ folder may use `import` unless --allow_gin_imports is given; treat a gin
file from elsewhere like a Python script.
"""

import datetime
import os
import re
import sys

# Quiet TensorFlow's C++ INFO lines on the console unless the user chose a level.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging
import gin

from mi_repr_tf import registry
from mi_repr_tf import runner
from mi_repr_tf.errors import ConfigError, NonFiniteLossError

PROJECT_GIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gin")

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("gin_file", [], "Gin files, in order (later ones override).")
flags.DEFINE_multi_string("gin_param", [], "Gin bindings, e.g. \"run.seed=1\".")
flags.DEFINE_string("workdir", None, "Run directory; default: a new folder under runs/.")
flags.DEFINE_float("log_every_secs", 10.0, "Seconds between progress lines on the console.")
flags.DEFINE_bool("async_probe", True, "Fit the linear probe in the background while training "
                  "goes on.")
flags.DEFINE_bool("allow_gin_imports", False, "Allow `import` lines in gin files outside "
                  "this project's gin/ folder (gin files are code).")


def default_workdir(gin_files):
  stem = os.path.splitext(os.path.basename(gin_files[-1]))[0] if gin_files else "run"
  stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
  return os.path.join("runs", f"{stem}-{stamp}")


def _check_imports(path, allow_imports):
  """Refuses gin `import` lines outside the project's gin/ folder unless allowed."""
  if allow_imports or os.path.abspath(path).startswith(PROJECT_GIN + os.sep):
    return
  with open(path, encoding="utf-8", errors="replace") as f:
    for number, line in enumerate(f, 1):
      if re.match(r"\s*(from\s+\S+\s+)?import\s", line):
        raise ConfigError(f"--gin_file={path!r} line {number} imports a Python module "
                          f"({line.strip()!r}); gin files are code: pass "
                          "--allow_gin_imports if you trust this file")


def parse_gin(gin_files, gin_params, allow_imports=False):
  """Parses gin files, then bindings; a problem becomes one ConfigError naming its source."""
  def parse(source, fn, arg):
    try:
      fn(arg)
    except Exception as e:  # gin raises ValueError, SyntaxError, tokenize.TokenError, ...
      message = " | ".join(str(e).strip().splitlines()[:6]) or type(e).__name__
      raise ConfigError(f"bad gin configuration in {source}: {message}") from e

  for path in gin_files:
    if not os.path.isfile(path):
      raise ConfigError(f"--gin_file={path!r} does not exist")
    _check_imports(path, allow_imports)
    # `include 'other.gin'` inside a gin file resolves next to that file.
    gin.add_config_file_search_path(os.path.dirname(os.path.abspath(path)))
    parse(f"--gin_file={path!r}", gin.parse_config_file, path)
  for binding in gin_params:
    if re.match(r"\s*(from\s+\S+\s+)?import\s", binding) and not allow_imports:
      raise ConfigError(f"--gin_param={binding!r} imports a Python module; pass "
                        "--allow_gin_imports to allow it")
    parse(f"--gin_param={binding!r}", gin.parse_config, binding)


def run(gin_files, gin_params, workdir=None, log_every_secs=10.0, async_probe=True,
        allow_imports=False):
  """Parses the configuration and runs the experiment; returns (workdir, results).

  Gin is cleared before and after. A run that fails on its configuration before training
  leaves no new workdir behind.
  """
  gin.clear_config()
  registry.load_all()  # every gin configurable exists before the files are parsed
  try:
    parse_gin(gin_files, gin_params, allow_imports)
    workdir = workdir or default_workdir(gin_files)
    return workdir, runner.run(workdir, log_every_secs, async_probe)
  finally:
    gin.clear_config()


def _message(error):
  # gin appends "In call to configurable ..." lines; the message itself names the key.
  return "\n".join(line for line in str(error).splitlines()
                   if not line.strip().startswith("In call to configurable"))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.get_absl_handler().use_absl_log_file = False
  try:
    workdir, results = run(FLAGS.gin_file, FLAGS.gin_param, FLAGS.workdir,
                           FLAGS.log_every_secs, FLAGS.async_probe, FLAGS.allow_gin_imports)
  except (ConfigError, NonFiniteLossError) as e:
    print(f"error: {_message(e)}", file=sys.stderr)
    return 2
  except runner.Interrupted as e:
    print(f"stopped: {e}", file=sys.stderr)
    return 130
  except KeyboardInterrupt:
    print("stopped before training began; run the same command again to start or resume.",
          file=sys.stderr)
    return 130
  if results:
    last = results[-1]
    shown = {k: v for k, v in last.items() if k in ("test_bound", "accuracy", "estimate")}
    logging.info("Done: %s (step %d%s)", workdir, last["step"],
                 "".join(f", {k} {v:.4f}" for k, v in shown.items()))
  return 0


if __name__ == "__main__":
  app.run(main)
