"""Extending the tool: a new estimator and a new critic, each one definition registered in
this file, run in a short sweep next to InfoNCE and appear in the paper's figure and in
table.md with no edit to the model, the controller or the report."""

import os

import gin
import keras
import tensorflow as tf

from mi_repr_tf import estimators
from mi_repr_tf import registry
from mi_repr_tf import report as report_lib
from mi_repr_tf import studies
from mi_repr_tf import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@estimators.estimator("toy_est")
def toy_estimator(scores, y=None, training=False, scale=0.5):
  """A toy bound: `scale` times InfoNCE, reported; InfoNCE itself is trained."""
  bound = estimators.infonce(scores, y, training)
  return estimators.Bound(scale * bound.value, bound.objective)


class ToyCritic(keras.layers.Layer):
  """f(x, y) = a * x . y with one learned scalar a."""

  def build(self, x_shape, y_shape):
    self.a = self.add_weight(name="a", shape=(), initializer="ones")

  def call(self, x, y):
    return self.a * tf.matmul(x, y, transpose_b=True)


@registry.register("critic", "toy_critic")
@gin.configurable("toy_critic")
def toy_critic():
  return ToyCritic(name="critic")


def test_a_toy_estimator_and_critic_run_in_a_sweep_and_appear_in_the_report(tiny_idx_dir,
                                                                            tmp_path):
  runs = studies.make_runs(studies.chainit([
      studies.product([studies.fixed(studies.GIN_FILE, "gin/critic_bilinear.gin"),
                       studies.sweep("train.estimator", ["nce", "toy_est"]),
                       studies.sweep(studies.SEED, [0])]),
      studies.product([studies.fixed(studies.GIN_FILE, "gin/critic_bilinear.gin"),
                       studies.fixed("train.critic", "toy_critic"),
                       studies.sweep(studies.SEED, [0])]),
  ]))
  tiny = [f"dataset.data_dir={tiny_idx_dir!r}", "dataset.name='mnist'", "run.num_steps=10",
          "run.eval_every=5", "train.batch_size=16", "run.steps_per_loop=5",
          "mlp.hidden_units=[16]", "mlp.dim=8", "run.jit_compile=False",
          "toy_est.scale=0.25"]
  root = tmp_path / "sweep"
  for run in runs:
    gin_files = [os.path.join(REPO, f) for f in run.gin_files]
    records = train.run(gin_files, list(run.bindings) + tiny, str(root / run.name))[1]
    assert [r["step"] for r in records] == [0, 5, 10]
  result = report_lib.report(str(root), str(tmp_path / "report"))
  figure3 = result.figures[os.path.join(str(tmp_path / "report"), "figure3.png")]
  titles = [p["title"] for p in figure3["panels"]]
  assert "toy_est" in titles
  lines = [label for p in figure3["panels"] for label in p["lines"]]
  assert any("toy_critic" in label for label in lines)
  table = (tmp_path / "report" / "table.md").read_text()
  assert "toy_est" in table and "toy_critic" in table
