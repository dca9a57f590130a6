"""Extending the tool: a new estimator and a new critic, each one definition registered in
this file, train the critic study next to every built-in estimator and appear in the
paper's figure and in table.md with no edit to the model, the controller or the report."""

import os

import gin
import keras
import pytest
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


@pytest.mark.parametrize("half", [0, 1])
def test_every_estimator_and_a_new_critic_train_the_critic_study_and_reach_the_report(
    tiny_idx_dir, tmp_path, half):
  """Each registered estimator (the built-in ones and toy_est above; nce and nwj train in
  many other tests) in a short critic-study run, the three critics' gin files taken in turn
  (toy_est with toy_critic): each is a panel of Figure 3 and a row of table.md, toy_critic a
  line and a row. In two halves, one per test process."""
  names = studies.registered_estimators()
  assert {"nce", "nwj", "tuba", "dv", "mine", "js", "smile", "interpolated",
          "toy_est"} <= set(names)
  tiny = [f"dataset.data_dir={tiny_idx_dir!r}", "dataset.name='mnist'", "run.num_steps=4",
          "run.eval_every=4", "train.batch_size=16", "run.steps_per_loop=4",
          "mlp.hidden_units=[16]", "mlp.dim=8", "concat.hidden_units=[8]",
          "separable.hidden_units=[8]", "separable.output_units=8", "run.jit_compile=False",
          "run.pixel_baseline=False", "toy_est.scale=0.25"]
  root = tmp_path / "sweep"
  # nce and nwj train in many other tests; every other estimator trains here.
  others = [n for n in names if n not in ("nce", "nwj", "toy_est")]
  runs = [(studies.CRITIC_GIN[i % len(studies.CRITIC_GIN)], {"train.estimator": name})
          for i, name in enumerate(others)][half::2]
  others = others[half::2]
  if half:
    runs.append(("gin/critic_bilinear.gin", {"train.estimator": "toy_est",
                                             "train.critic": "toy_critic"}))
  for gin_file, setting in runs:
    run = studies.make_runs(studies.product(
        [studies.fixed(studies.GIN_FILE, gin_file)]
        + [studies.fixed(k, v) for k, v in setting.items()] + [studies.sweep(studies.SEED, [0])]
    ))[0]
    records = train.run([os.path.join(REPO, gin_file)], list(run.bindings) + tiny,
                        str(root / f"{'-'.join(setting.values())}-{run.name}"))[1]
    assert [r["step"] for r in records] == [0, 4]
    assert all(isinstance(r["accuracy"], float) for r in records)
  result = report_lib.report(str(root), str(tmp_path / "report"))
  figure3 = result.figures[os.path.join(str(tmp_path / "report"), "figure3.png")]
  titles = {p["title"] for p in figure3["panels"]}
  names = others + ["toy_est"] * half
  assert {report_lib.experiments.pretty("estimator", name) for name in names} <= titles
  table = (tmp_path / "report" / "table.md").read_text()
  assert all(f"estimator={name}" in table for name in names)
  if half:
    lines = [label for p in figure3["panels"] for label in p["lines"]]
    assert any("toy_critic" in label for label in lines) and "toy_critic" in table
