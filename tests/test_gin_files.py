"""Every gin file parses, cites the paper, and the CIFAR10 files run end to end on tfds mock
data (32x32x3 images, 16x32x3 halves)."""

import glob
import os

import pytest
import tensorflow_datasets as tfds

import gin

from mi_repr_tf import registry
from mi_repr_tf import train
from mi_repr_tf.report import experiments as report_experiments

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIN_FILES = sorted(glob.glob(os.path.join(REPO, "gin", "*.gin")))


@pytest.mark.parametrize("path", GIN_FILES, ids=os.path.basename)
def test_gin_file_parses_cites_the_paper_and_binds_its_experiment(path):
  registry.load_all()
  train.parse_gin([path], [])
  with open(path) as f:
    header = f.readline()
  assert header.startswith("# ") and any(
      word in header for word in ("Section", "Appendix", "Figure", "Poole")), header
  # The run's identity is bound, not guessed: the report draws its figures from it.
  experiment_id = gin.query_parameter("run.experiment_id")
  assert experiment_id in report_experiments.EXPERIMENTS, experiment_id
  registry.get("experiment", gin.query_parameter("run.experiment"))


@pytest.mark.parametrize("name,extra", [
    ("cifar10_critic_mlp.gin", []),
    ("cifar10_target_convnet.gin", ["train.target=0.5"]),
])
def test_cifar10_gin_files_run_on_mock_data(tmp_path, name, extra):
  bindings = ["run.num_steps=4", "run.eval_every=2", "train.batch_size=8",
              "run.steps_per_loop=2", "run.jit_compile=False",
              "dataset.download=False"] + extra
  with tfds.testing.mock_data(num_examples=32):
    _, results = train.run([os.path.join(REPO, "gin", name)], bindings, str(tmp_path / "run"))
  assert [r["step"] for r in results] == [0, 2, 4]
  config = (tmp_path / "run" / "operative_config.gin").read_text()
  assert "dataset.name = 'cifar10'" in config and "train.learning_rate = 1e-05" in config
  if extra:
    assert all("test_target_gap" in r for r in results)
