"""The Dockerfile and launch/docker_sweep.sh, as far as they can be checked without a Docker
engine: the file parses, its base image is the pinned TensorFlow's GPU image, what it copies
exists, and the script calls `docker run --gpus all` with the data and runs folders mounted."""

import configparser
import os
import re
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKERFILE = os.path.join(REPO, "Dockerfile")
SCRIPT = os.path.join(REPO, "launch", "docker_sweep.sh")
KEYWORDS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
            "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}


def instructions(text):
  """[(KEYWORD, arguments)] of a Dockerfile: comments dropped, continuations joined, runs of
  white space made one space."""
  result, current = [], ""
  for line in text.splitlines():
    if not current and (not line.strip() or line.lstrip().startswith("#")):
      continue
    current += line.rstrip()
    if current.endswith("\\"):
      current = current[:-1] + " "
      continue
    keyword, _, args = current.strip().partition(" ")
    result.append((keyword, " ".join(args.split())))
    current = ""
  assert not current, "a continuation line runs past the end of the file"
  return result


def pinned(requirement_name):
  config = configparser.ConfigParser()
  config.read(os.path.join(REPO, "setup.cfg"))
  for line in config["options"]["install_requires"].splitlines():
    m = re.fullmatch(rf"\s*{re.escape(requirement_name)}==([\w.]+)\s*", line)
    if m:
      return m.group(1)
  raise AssertionError(f"{requirement_name} is not pinned in setup.cfg")


def test_instructions_parse():
  parsed = instructions("# c\nFROM a:b\nRUN x \\\n  && y\n\nENV A=1 \\\n    B=2\n")
  assert parsed == [("FROM", "a:b"), ("RUN", "x && y"), ("ENV", "A=1 B=2")]


def test_dockerfile_is_valid_and_matches_setup_cfg():
  parsed = instructions(open(DOCKERFILE).read())
  assert {k for k, _ in parsed} <= KEYWORDS, [k for k, _ in parsed if k not in KEYWORDS]
  assert all(k == k.upper() for k, _ in parsed)
  froms = [args for k, args in parsed if k == "FROM"]
  assert froms == [f"tensorflow/tensorflow:{pinned('tensorflow')}-gpu"]
  assert parsed[0][0] == "FROM"
  # Everything copied exists in the repository (and is not excluded by .dockerignore).
  ignored = {line.strip() for line in open(os.path.join(REPO, ".dockerignore"))
             if line.strip() and not line.startswith("#")}
  for keyword, args in parsed:
    if keyword == "COPY":
      *sources, _ = args.split()
      for source in sources:
        assert os.path.exists(os.path.join(REPO, source)), source
        assert source.split("/")[0] not in ignored, source
  # The package is installed with an extra that setup.cfg defines, and the entry point exists.
  config = configparser.ConfigParser()
  config.read(os.path.join(REPO, "setup.cfg"))
  extras = set(config["options.extras_require"])
  installs = [args for k, args in parsed if k == "RUN" and "pip install" in args]
  for extra in re.findall(r'"\.\[([\w,]+)\]"', " ".join(installs)):
    assert set(extra.split(",")) <= extras, extra
  assert any('".[ray]"' in args for args in installs)
  entrypoint = [args for k, args in parsed if k == "ENTRYPOINT"]
  assert entrypoint == ['["python3", "-m", "launch.sweep"]']
  assert os.path.exists(os.path.join(REPO, "launch", "sweep.py"))
  assert [args for k, args in parsed if k == "WORKDIR"] == ["/opt/mi_repr_tf"]


def test_ray_extra_pins_ray():
  config = configparser.ConfigParser()
  config.read(os.path.join(REPO, "setup.cfg"))
  assert config["options.extras_require"]["ray"].split() == ["ray==2.60.0"]


def _fake_docker(tmp_path):
  """A `docker` that writes its arguments, one a line, to a file."""
  record = tmp_path / "docker_args.txt"
  fake = tmp_path / "docker"
  fake.write_text(f"#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done > {record}\n")
  fake.chmod(0o755)
  return fake, record


@pytest.mark.parametrize("extra,gpu_flag", [([], ["--gpus=all"]), (["--gpus=1"], [])])
def test_docker_sweep_script_runs_the_sweep_with_gpus_and_mounts(tmp_path, extra, gpu_flag):
  subprocess.run(["bash", "-n", SCRIPT], check=True)
  fake, record = _fake_docker(tmp_path)
  data, runs = tmp_path / "data", tmp_path / "runs" / "critic_study"
  data.mkdir()
  env = dict(os.environ, DOCKER=str(fake), IMAGE="img:1")
  result = subprocess.run([SCRIPT, str(data), str(runs), "--sweep=critic_study",
                           "--gin_param=dataset.data_dir='/data'", *extra],
                          env=env, capture_output=True, text=True, timeout=60)
  assert result.returncode == 0, result.stderr
  args = record.read_text().splitlines()
  uid_gid = f"{os.getuid()}:{os.getgid()}"
  assert args == ["run", "--rm", "--init", "--gpus", "all", "--user", uid_gid, "-e",
                  "HOME=/tmp", "-v", f"{data}:/data:ro", "-v", f"{runs}:/runs", "img:1",
                  "--runs=/runs", *gpu_flag, "--sweep=critic_study",
                  "--gin_param=dataset.data_dir='/data'", *extra]
  assert runs.is_dir()  # created for the mount


def test_docker_sweep_script_usage(tmp_path):
  result = subprocess.run([SCRIPT], capture_output=True, text=True, timeout=60)
  assert result.returncode == 2 and "DATA_DIR RUNS_DIR" in result.stderr
