"""The staircase benchmark (Poole et al. 2019; Song & Ermon 2020): closed forms, batches, a
short run with resume, configuration errors, the study and the bias/variance/MSE table."""

import json
import math
import os
import shutil

import gin
import numpy as np
import pytest
import tensorflow as tf

from launch import staircase_table
from mi_repr_tf import registry
from mi_repr_tf import rundir
from mi_repr_tf import studies
from mi_repr_tf import train
from mi_repr_tf.errors import ConfigError
from mi_repr_tf.experiments import staircase

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GAUSSIAN_GIN = os.path.join(REPO, "gin", "staircase_gaussian.gin")
CUBIC_GIN = os.path.join(REPO, "gin", "staircase_cubic.gin")
K = 4  # small, so that a trained InfoNCE critic comes close to its ceiling log K
SHORT = ["staircase.dim=2", "staircase.stages=[1.0, 4.0]", "staircase.steps_per_stage=40",
         f"staircase.batch_size={K}", "staircase.hidden_units=[16]", "staircase.embed_dim=8",
         "staircase.learning_rate=3e-2", "staircase.eval_batches=4",
         "staircase.critic='concat'", "run.num_steps=80", "run.eval_every=20",
         "run.steps_per_loop=20", "run.pixel_baseline=False", "run.jit_compile=False"]


@pytest.mark.parametrize("mi,dim", [(2.0, 20), (10.0, 20), (0.5, 2), (4.0, 2), (1e-6, 20)])
def test_rho_gives_exactly_the_stage_mi(mi, dim):
  rho = staircase.mi_to_rho(mi, dim)
  assert 0.0 < rho < 1.0
  # I = -(dim / 2) log(1 - rho^2), written out independently of the module.
  assert -0.5 * dim * np.log(1.0 - rho**2) == pytest.approx(mi, rel=1e-9)
  assert staircase.rho_to_mi(rho, dim) == pytest.approx(mi, rel=1e-12)


def test_paper_rhos_and_bits():
  gin.parse_config(["staircase.units = 'bits'", "staircase.stages = [1, 2]"])
  own = staircase.staircase_settings()
  assert own["mis"] == pytest.approx([math.log(2), 2 * math.log(2)])
  gin.clear_config()
  own = staircase.staircase_settings()  # the papers' defaults: 2 .. 10 nats over 20 dims
  assert own["mis"] == [2.0, 4.0, 6.0, 8.0, 10.0]
  assert own["rhos"][-1] == pytest.approx(math.sqrt(1 - math.exp(-1.0)))


def test_batches_have_the_stage_correlation():
  rho = staircase.mi_to_rho(6.0, 20)
  x, y = staircase.sample_batch(tf.constant([1, 2], tf.int64), rho, 20, 20000)
  x, y = x.numpy().astype(np.float64), y.numpy().astype(np.float64)
  per_dim = [np.corrcoef(x[:, d], y[:, d])[0, 1] for d in range(20)]
  np.testing.assert_allclose(per_dim, rho, atol=0.01)
  np.testing.assert_allclose(y.var(axis=0), 1.0, atol=0.05)
  assert abs(np.corrcoef(x[:, 0], y[:, 1])[0, 1]) < 0.03  # only coordinate pairs correlate


def _batch(seed, step, cubic=False, rhos=(0.3, 0.9)):
  x, y = staircase.step_batch(seed, tf.constant(step, tf.int64), list(rhos), 10, 3, 16, cubic)
  return x.numpy(), y.numpy()


def test_batches_are_a_pure_function_of_seed_and_step():
  first = _batch(7, 12)
  again = tf.function(lambda: staircase.step_batch(
      7, tf.constant(12, tf.int64), [0.3, 0.9], 10, 3, 16))()
  np.testing.assert_array_equal(first[0], again[0].numpy())
  np.testing.assert_array_equal(first[1], again[1].numpy())
  assert not np.array_equal(first[0], _batch(7, 13)[0])
  assert not np.array_equal(first[0], _batch(8, 12)[0])
  # Steps 1..10 are stage 0 and 11..20 stage 1: step 10 uses rho 0.3, step 11 rho 0.9.
  assert staircase.stage_of(10, 10) == 0 and staircase.stage_of(11, 10) == 1
  for step, rho in ((10, 0.3), (11, 0.9)):
    x, y = staircase.sample_batch(tf.constant([7, step], tf.int64), rho, 3, 16)
    np.testing.assert_array_equal(_batch(7, step)[1], y.numpy())


def test_cubic_variant_is_the_cube_with_the_same_mi():
  x, y = _batch(3, 15)
  x_cubic, y_cubic = _batch(3, 15, cubic=True)
  np.testing.assert_array_equal(x, x_cubic)
  np.testing.assert_allclose(y_cubic, y**3, rtol=1e-6)
  train.parse_gin([CUBIC_GIN], [])
  cubic = staircase.staircase_settings()
  gin.clear_config()
  train.parse_gin([GAUSSIAN_GIN], [])
  gaussian = staircase.staircase_settings()
  assert cubic.pop("cubic") is True and gaussian.pop("cubic") is False
  assert cubic == gaussian  # same stages, hence the same true MI, and all else equal


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("staircase") / "run")
  return train.run([GAUSSIAN_GIN], SHORT, workdir)


def test_short_run_records_the_staircase(short_run):
  _, results = short_run
  assert [r["step"] for r in results] == [0, 20, 40, 60, 80]
  assert [r["true_mi"] for r in results] == [1.0, 1.0, 1.0, 4.0, 4.0]
  assert [len(r["step_estimates"]) for r in results] == [0, 20, 20, 20, 20]
  for r in results[1:]:  # the controller's mean matches the per-step list
    assert r["estimate"] == pytest.approx(np.mean(r["step_estimates"]), abs=1e-6)
  ends = {r["step"]: r for r in results if "stage_estimate" in r}
  assert sorted(ends) == [40, 80]
  assert [(r["stage"], r["stage_true_mi"]) for r in ends.values()] == [(0, 1.0), (1, 4.0)]
  assert all(math.isfinite(ends[s]["stage_estimate"]) for s in ends)
  assert results[-1]["step_estimates"][-1] > results[1]["step_estimates"][0]  # it learns


def test_infonce_never_exceeds_log_batch_size(short_run):
  _, results = short_run
  values = [v for r in results for v in r["step_estimates"]]
  values += [r["stage_estimate"] for r in results if "stage_estimate" in r]
  assert max(values) <= math.log(K) + 1e-6
  assert max(values) > math.log(K) - 0.25  # close to the ceiling: the check is not vacuous


def test_resume_after_losing_the_last_record_reproduces_it(short_run, tmp_path):
  workdir, results = short_run
  copy = str(tmp_path / "copy")
  shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns(".lock"))
  path = os.path.join(copy, "results.jsonl")
  with open(path) as f:
    lines = f.readlines()
  with open(path, "w") as f:
    f.writelines(lines[:-1])
  _, resumed = train.run([GAUSSIAN_GIN], SHORT, copy)
  assert resumed == results
  with open(path) as f:
    assert json.loads(f.readlines()[-1]) == results[-1]


@pytest.mark.parametrize("binding,key", [
    ("staircase.critic='bilinear'", "staircase.critic"),
    ("run.num_steps=100", "run.num_steps"),
    ("run.eval_every=30", "run.eval_every"),
    ("staircase.units='bans'", "staircase.units"),
    ("staircase.stages=[]", "staircase.stages"),
])
def test_bad_configuration_is_one_error_naming_the_key(tmp_path, binding, key):
  workdir = tmp_path / "run"
  with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as error:
    train.run([GAUSSIAN_GIN], SHORT + [binding], str(workdir))
  if key == "run.num_steps":
    assert "staircase.steps_per_stage" in str(error.value)
  assert not workdir.exists()


def test_study_sweeps_files_estimators_critics_and_seeds():
  registry.register("estimator", "staircase_toy")(lambda scores, y=None, training=False: None)
  try:
    runs = studies.study("staircase", num_seeds=2)
  finally:
    registry.unregister("estimator", "staircase_toy")
  swept = {r.settings["staircase.estimator"] for r in runs}
  assert "staircase_toy" in swept  # a newly registered estimator joins by default
  assert {"nce", "nwj", "tuba", "dv", "mine", "js", "smile", "interpolated"} <= swept
  assert len(runs) == 2 * len(swept) * 2 * 2
  assert runs[0].name == "staircase_gaussian-nce-separable-seed0"
  assert {r.settings["staircase.critic"] for r in runs} == {"separable", "concat"}
  studies.check_gin_files(runs)
  only_nce = studies.study("staircase", num_seeds=3, estimators=["nce"])
  assert len(only_nce) == 2 * 2 * 3  # one estimator: not part of the names
  assert only_nce[-1].name == "staircase_cubic-concat-seed2"


def _record(step, estimates, **stage):
  return {"step": step, "step_estimates": estimates, **stage}


def test_table_bias_variance_and_mse_on_known_records():
  """Stages of 4 steps recorded every 2: the second half of stage 0 is steps 3, 4; of
  stage 1 steps 7, 8 (true MI 1 and 2 nats)."""
  config = {"staircase.steps_per_stage": 4, "staircase.estimator": "nwj",
            "staircase.critic": "concat", "staircase.cubic": True, "run.seed": 0}
  seed0 = [_record(0, []), _record(2, [9.0, 9.0]),
           _record(4, [0.5, 1.5], stage=0, stage_true_mi=1.0),
           _record(6, [9.0, 9.0]), _record(8, [1.0, 2.0], stage=1, stage_true_mi=2.0)]
  seed1 = [_record(4, [-9.0, -9.0, 1.0, 2.0], stage=0, stage_true_mi=1.0),
           _record(8, [-9.0, -9.0, 3.0, 4.0], stage=1, stage_true_mi=2.0)]
  runs = [(config, seed0), (dict(config, **{"run.seed": 1}), seed1)]
  assert staircase_table.differing_settings(runs) == []
  table = staircase_table.rows(staircase_table.pool(runs))
  # Stage 0: e = 0.5, 1.5, 1, 2: mean 1.25, bias 0.25, variance 0.3125, MSE 0.375.
  # Stage 1: e = 1, 2, 3, 4: mean 2.5, bias 0.5, variance 1.25, MSE 1.5.
  expected = [("cubic", "nwj", "concat", 0, 1.0, 0.25, 0.3125, 0.375, 4),
              ("cubic", "nwj", "concat", 1, 2.0, 0.5, 1.25, 1.5, 4)]
  assert len(table) == 2
  for row, want in zip(table, expected):
    assert row[:4] == want[:4] and row[-1] == want[-1]
    np.testing.assert_allclose(row[4:8], want[4:8])
  text = staircase_table.markdown(table)
  assert "| cubic | nwj | concat | 1 | 2.000 | 0.500 | 1.250 | 1.500 | 4 |" in text
  other = dict(config, **{"staircase.batch_size": 128})
  assert staircase_table.differing_settings(runs + [(other, seed1)]) == [
      "staircase.batch_size"]


def test_runs_of_one_estimator_with_different_parameters_are_not_pooled():
  """smile.tau is compared between the smile runs only: the nwj runs have no smile.tau."""
  base = {"staircase.steps_per_stage": 4, "staircase.critic": "concat", "run.seed": 0}
  nwj = dict(base, **{"staircase.estimator": "nwj"})
  smile5 = dict(base, **{"staircase.estimator": "smile", "smile.tau": 5.0})
  smile5_seed1 = dict(smile5, **{"run.seed": 1})
  smile_none = dict(smile5, **{"smile.tau": None})
  runs = [(c, []) for c in (nwj, smile5, smile5_seed1)]
  assert staircase_table.differing_settings(runs) == []
  assert staircase_table.differing_settings(runs + [(smile_none, [])]) == ["smile.tau"]


def test_table_command_reads_run_directories(tmp_path, capsys):
  config = ("run.experiment = 'staircase'\nrun.seed = {seed}\nstaircase.steps_per_stage = 4\n"
            "staircase.estimator = 'nce'\nstaircase.critic = 'separable'\n"
            "staircase.cubic = False\n")
  for seed, estimates in ((0, [9.0, 9.0, 1.0, 3.0]), (1, [9.0, 9.0, 2.0, 2.0])):
    workdir = tmp_path / "runs" / f"seed{seed}"
    workdir.mkdir(parents=True)
    rundir.write_text(str(workdir), rundir.CONFIG, config.format(seed=seed))
    rundir.append_result(str(workdir), _record(4, estimates, stage=0, stage_true_mi=2.0))
  (tmp_path / "runs" / "not-a-run").mkdir()
  assert staircase_table.main(["table", str(tmp_path / "runs")]) == 0
  captured = capsys.readouterr()
  # e = 1, 3, 2, 2 against 2 nats: bias 0, variance 0.5, MSE 0.5.
  assert ("| gaussian | nce | separable | 0 | 2.000 | 0.000 | 0.500 | 0.500 | 4 |"
          in captured.out)
  # Neither run recorded its planned last step: both are named as not finished.
  assert "2 run(s) not finished" in captured.err
  assert staircase_table.main(["table", str(tmp_path / "nowhere")]) == 2
  # --only keeps the matching run directories: seed 1 alone (e = 2, 2: variance 0).
  assert staircase_table.main(["table", str(tmp_path / "runs"), "--only=seed1$"]) == 0
  assert ("| gaussian | nce | separable | 0 | 2.000 | 0.000 | 0.000 | 0.000 | 2 |"
          in capsys.readouterr().out)
  assert staircase_table.main(["table", str(tmp_path / "runs"), "--only=nothing"]) == 1
  assert staircase_table.main(["table", str(tmp_path / "runs"), "--only=("]) == 2
  assert "not a regular expression" in capsys.readouterr().err


def test_wide_table_has_one_block_per_variant_and_critic():
  rows = [("gaussian", "nce", "concat", 0, 2.0, -0.25, 0.0375, 0.1, 4000),
          ("gaussian", "nce", "concat", 1, 4.0, -1.0, 0.035, 1.035, 4000),
          ("gaussian", "js", "concat", 0, 2.0, -0.15, 0.056, 0.0785, 4000),
          ("gaussian", "js", "concat", 1, 4.0, -1234567.0, 2.5e19, 2.5e19, 1500),
          ("cubic", "nce", "separable", 0, 2.0, -0.7, 0.03, 0.52, 4000)]
  text = staircase_table.wide_markdown(rows, {("cubic", "separable", "nwj")})
  titles, tables = text.split("\n\n")[::2], text.split("\n\n")[1::2]
  assert [t.split(":")[0] for t in titles] == ["cubic, separable critic",
                                                "gaussian, concat critic"]
  gaussian = tables[1].splitlines()
  assert gaussian[0] == "| estimator | 2 nats | 4 nats |"
  # Estimators sorted by name; a stage pooled from fewer estimates carries its count.
  assert gaussian[2] == "| js | -0.15 / 0.056 | -1.23e+06 / 2.5e+19 (n=1500) |"
  assert gaussian[3] == "| nce | -0.25 / 0.0375 | -1 / 0.035 |"
  # An estimator whose runs completed no stage (they stopped) has a row of "-".
  assert tables[0].splitlines()[2:] == ["| nce | -0.7 / 0.03 |", "| nwj | - |"]
