"""Known answers, bounds and invariances of the MI estimators."""

import math

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from mi_repr_tf import estimators
from mi_repr_tf import estimators_stateful
from mi_repr_tf import model as model_lib
from mi_repr_tf import registry
from mi_repr_tf.errors import ConfigError

NEW_ESTIMATORS = ("dv", "interpolated", "js", "mine", "smile", "tuba")


def test_infonce_with_dominant_diagonal_is_log_k():
  k = 64
  scores = 1e4 * np.eye(k, dtype=np.float32)
  assert float(estimators.infonce(scores).value) == pytest.approx(math.log(k), abs=1e-5)


def test_infonce_of_constant_scores_is_zero():
  assert float(estimators.infonce(np.full((32, 32), 3.7, np.float32)).value) == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("scale", [0.1, 10.0, 1000.0])
def test_infonce_never_exceeds_log_k(seed, scale):
  rng = np.random.default_rng(seed)
  k = 17
  scores = scale * rng.standard_normal((k, k)).astype(np.float32)
  scores[np.diag_indices(k)] += scale  # favour positives
  assert float(estimators.infonce(scores).value) <= math.log(k) + 1e-5


def test_infonce_invariant_to_row_shifts():
  """S_ij + c_i leaves I_NCE unchanged (a critic is defined up to a function of x)."""
  rng = np.random.default_rng(0)
  scores = rng.standard_normal((9, 9)).astype(np.float32)
  shifted = scores + 50 * rng.standard_normal((9, 1)).astype(np.float32)
  assert float(estimators.infonce(shifted).value) == pytest.approx(float(estimators.infonce(scores).value),
                                                             abs=1e-4)


def _nwj_reference(scores):
  s = np.asarray(scores, np.float64)
  k = len(s)
  off = s[~np.eye(k, dtype=bool)]
  return np.mean(np.diag(s)) - np.exp(-1) * np.mean(np.exp(off))


def test_nwj_matches_closed_form_using_off_diagonal_only():
  rng = np.random.default_rng(1)
  scores = rng.standard_normal((11, 11)).astype(np.float32)
  assert float(estimators.nwj(scores).value) == pytest.approx(_nwj_reference(scores), rel=1e-5)
  # Changing the diagonal's marginal contribution must not matter: only mean diag enters.
  bumped = scores.copy()
  bumped[0, 0] += 1.0
  assert float(estimators.nwj(bumped).value) - float(estimators.nwj(scores).value) == pytest.approx(1 / 11,
                                                                                       rel=1e-4)


def test_nwj_is_computed_in_log_space():
  """Off-diagonal scores of 87: each exp fits in float32, their sum would overflow."""
  k = 128
  scores = np.full((k, k), 87.0, np.float32)
  np.fill_diagonal(scores, 0.0)
  value = float(estimators.nwj(scores).value)
  assert math.isfinite(value)
  assert value == pytest.approx(-math.exp(86.0), rel=1e-4)


def _gaussian_pair(rho, k, seed):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal(k)
  y = rho * x + math.sqrt(1 - rho**2) * rng.standard_normal(k)
  return x, y


def _log_density_ratio(x, y, rho):
  """log p(y | x) / p(y) for a standard bivariate Gaussian with correlation rho: [K, K]."""
  x, y = x[:, None], y[None, :]
  var = 1 - rho**2
  return -0.5 * math.log(var) - (y - rho * x)**2 / (2 * var) + y**2 / 2


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_nwj_with_optimal_critic_recovers_gaussian_mi(rho):
  true_mi = -0.5 * math.log(1 - rho**2)
  values = []
  for seed in range(8):
    x, y = _gaussian_pair(rho, 512, seed)
    scores = 1.0 + _log_density_ratio(x, y, rho)  # NWJ's optimum: 1 + log p(x,y)/p(x)p(y)
    values.append(float(estimators.nwj(scores.astype(np.float32)).value))
  assert np.mean(values) == pytest.approx(true_mi, abs=0.03)


def test_infonce_with_optimal_critic_is_close_below_gaussian_mi():
  rho = 0.5
  true_mi = -0.5 * math.log(1 - rho**2)
  values = [float(estimators.infonce(_log_density_ratio(*_gaussian_pair(rho, 512, s), rho)
                                     .astype(np.float32)).value) for s in range(8)]
  assert np.mean(values) == pytest.approx(true_mi, abs=0.02)
  assert np.mean(values) <= true_mi + 0.01


@pytest.mark.parametrize("bindings", ["", "tuba.baseline = 'learned'\ninterpolated.baseline = 'learned'"])
def test_estimators_are_differentiable(bindings):
  """Every registered estimator: finite value, objective and gradient on a random 6 x 6 S."""
  gin.parse_config(bindings)
  rng = np.random.default_rng(0)
  scores = tf.Variable(rng.standard_normal((6, 6)).astype(np.float32))
  y = tf.constant(rng.standard_normal((6, 5)).astype(np.float32))
  names = registry.names("estimator")
  assert set(NEW_ESTIMATORS) <= set(names)
  for name in names:
    with tf.GradientTape() as tape:
      bound = estimators.build(name)(scores, y, training=True)
    grad = tape.gradient(bound.objective, scores)
    assert np.isfinite(float(bound.value)) and np.isfinite(float(bound.objective)), name
    assert grad is not None and np.all(np.isfinite(grad.numpy())), name


def test_target_loss():
  bound = estimators.Bound(tf.constant(3.0), tf.constant(7.0))  # value 3, objective 7
  assert float(estimators.loss(bound, None)) == -7.0  # maximise the objective
  assert float(estimators.loss(bound, 2.0)) == 1.0  # |value - t|
  assert float(estimators.loss(estimators.Bound(tf.constant(1.5), 0.0), 2.0)) == 0.5


def test_unknown_estimator_names_the_key_and_the_choices():
  with pytest.raises(ConfigError, match=r"train.estimator='foo'.*'nce', 'nwj'"):
    estimators.build("foo")


# ---------------------------------------------------------------------------------------------
# The other variational bounds (Poole et al. 2019; Song & Ermon 2020): float64 references.


def _off(s):
  return np.asarray(s, np.float64)[~np.eye(len(s), dtype=bool)]


def _log_mean_exp(values):
  m = np.max(values)
  return m + np.log(np.mean(np.exp(values - m)))


def _dv_reference(s):
  return np.mean(np.diag(np.asarray(s, np.float64))) - _log_mean_exp(_off(s))


def _tuba_reference(s, log_a):
  """1 + mean_i (S_ii - log a_i) - mean_{i != j} exp(S_ij - log a_j), pair by pair."""
  s = np.asarray(s, np.float64)
  k = len(s)
  log_a = np.broadcast_to(np.asarray(log_a, np.float64), (k,))
  marginal = np.mean([np.exp(s[i, j] - log_a[j]) for i in range(k) for j in range(k) if i != j])
  return 1 + np.mean(np.diag(s) - log_a) - marginal


def _softplus(x):
  return np.logaddexp(0.0, x)


def _js_objective_reference(s):
  s = np.asarray(s, np.float64)
  return np.mean(-_softplus(-np.diag(s))) - np.mean(_softplus(_off(s)))


def _smile_reference(s, tau):
  s = np.asarray(s, np.float64)
  clipped = s if tau is None else np.clip(s, -tau, tau)
  return np.mean(np.diag(s)) - _log_mean_exp(_off(clipped))


def _interpolated_reference(s, log_a, alpha):
  """Poole et al.'s I_alpha written out pair by pair in probability space: a y's baseline is
  alpha * (mean of exp f over K - 1 x's, leaving one out) + (1 - alpha) * a(y)."""
  s = np.asarray(s, np.float64)
  k = len(s)
  a = np.exp(np.broadcast_to(np.asarray(log_a, np.float64), (k,)))

  def baseline(j, left_out):
    others = [np.exp(s[m, j]) for m in range(k) if m != left_out]
    return alpha * np.mean(others) + (1 - alpha) * a[j]

  joint = np.mean([s[j, j] - np.log(baseline(j, l)) for j in range(k) for l in range(k)
                   if l != j])
  marginal = np.mean([np.exp(s[i, j]) / baseline(j, j) for i in range(k) for j in range(k)
                      if i != j])
  return 1 + joint - marginal


_REFERENCES = {  # name -> (value, objective) with the default bindings
    "dv": (_dv_reference, _dv_reference),
    "mine": (_dv_reference, _dv_reference),
    "js": (lambda s: _tuba_reference(s, 0.0), _js_objective_reference),
    "smile": (lambda s: _smile_reference(s, 5.0), _js_objective_reference),
    "tuba": (lambda s: _tuba_reference(s, 1.0), lambda s: _tuba_reference(s, 1.0)),
    "interpolated": (lambda s: _interpolated_reference(s, 1.0, 0.01),
                     lambda s: _interpolated_reference(s, 1.0, 0.01)),
}


def _matrices():
  rng = np.random.default_rng(3)
  return [np.array([[1.0, -0.5, 0.2], [0.3, 2.0, -1.0], [0.0, 0.7, 1.5]], np.float32),
          (1.5 * rng.standard_normal((5, 5))).astype(np.float32),
          (4.0 * rng.standard_normal((4, 4))).astype(np.float32)]  # beyond smile's tau = 5


@pytest.mark.parametrize("name", sorted(_REFERENCES))
def test_new_estimators_match_their_closed_forms(name):
  value_reference, objective_reference = _REFERENCES[name]
  for s in _matrices():
    bound = estimators.build(name)(s)
    assert float(bound.value) == pytest.approx(value_reference(s), rel=1e-5, abs=1e-5)
    assert float(bound.objective) == pytest.approx(objective_reference(s), rel=1e-5, abs=1e-5)


def test_known_answers_by_hand_on_a_two_by_two_matrix():
  """S = [[2, 0], [0, 2]]: every term has a short closed form."""
  s = np.array([[2.0, 0.0], [0.0, 2.0]], np.float32)
  e, alpha = math.e, 0.01

  def value(name):
    return float(estimators.build(name)(s).value)

  assert value("dv") == pytest.approx(2.0, abs=1e-6)  # 2 - log mean(1, 1)
  assert value("mine") == pytest.approx(2.0, abs=1e-6)
  assert value("smile") == pytest.approx(2.0, abs=1e-6)
  assert value("js") == pytest.approx(2.0, abs=1e-6)  # 1 + 2 - e^0
  assert value("tuba") == pytest.approx(2.0 - 1 / e, abs=1e-6)  # 1 + (2 - 1) - e^-1
  assert float(estimators.js(s).objective) == pytest.approx(
      -math.log(1 + math.exp(-2)) - math.log(2), abs=1e-6)
  # Column j, leaving out row l != j keeps the positive 2; leaving out row j keeps the 0.
  expected = 1 + 2 - math.log(alpha * e**2 + (1 - alpha) * e) - 1 / (alpha + (1 - alpha) * e)
  assert value("interpolated") == pytest.approx(expected, abs=1e-6)


def test_tuba_with_constant_log_baseline_one_is_nwj():
  for s in _matrices():
    assert float(estimators.build("tuba")(s).value) == pytest.approx(
        float(estimators.nwj(s).value), rel=1e-6, abs=1e-6)


def test_js_value_is_nwj_of_the_scores_plus_one():
  for s in _matrices():
    assert float(estimators.js(s).value) == pytest.approx(float(estimators.nwj(s + 1).value),
                                                          rel=1e-6, abs=1e-6)


def test_smile_without_clipping_or_with_a_large_tau_is_dv():
  for s in _matrices():
    dv = float(estimators.donsker_varadhan(s).value)
    assert float(estimators.smile(s, tau=None).value) == pytest.approx(dv, abs=1e-6)
    assert float(estimators.smile(s, tau=1e3).value) == pytest.approx(dv, abs=1e-6)


def test_smile_with_a_small_tau_clips_the_marginal_term_only():
  s = _matrices()[2]  # entries up to about +-8, diagonal included
  tau = 1.0
  value = float(estimators.smile(s, tau=tau).value)
  assert value == pytest.approx(_smile_reference(s, tau), rel=1e-5)
  # The positives stay unclipped; the off-diagonal log-mean-exp drops from its DV value.
  shift = _log_mean_exp(_off(s)) - _log_mean_exp(np.clip(_off(s), -tau, tau))
  assert shift > 1.0
  assert value - float(estimators.donsker_varadhan(s).value) == pytest.approx(shift, rel=1e-4)


def _js_gradient(s):
  """d/dS of mean_i -softplus(-S_ii) - mean_{i != j} softplus(S_ij), by hand."""
  s = np.asarray(s, np.float64)
  k = len(s)
  sigmoid = lambda x: 1 / (1 + np.exp(-x))  # pylint: disable=unnecessary-lambda-assignment
  return np.where(np.eye(k, dtype=bool), sigmoid(-s) / k, -sigmoid(s) / (k * (k - 1)))


@pytest.mark.parametrize("name", ["js", "smile"])
def test_js_and_smile_train_the_js_objective_and_report_their_own_value(name):
  s = _matrices()[2]
  scores = tf.Variable(s)
  with tf.GradientTape() as tape:
    bound = estimators.build(name)(scores)
  np.testing.assert_allclose(tape.gradient(bound.objective, scores).numpy(), _js_gradient(s),
                             rtol=1e-5, atol=1e-7)
  reported = _REFERENCES[name][0](s)
  assert float(bound.value) == pytest.approx(reported, rel=1e-5)
  assert float(bound.objective) == pytest.approx(_js_objective_reference(s), rel=1e-5)
  assert abs(reported - _js_objective_reference(s)) > 0.3  # the value is not the objective


# ---------------------------------------------------------------------------------------------
# MINE: the moving average is state.


def _mine_batches():
  rng = np.random.default_rng(7)
  return [(rng.standard_normal((5, 5)) + shift).astype(np.float32) for shift in (0, 1, -1, 2)]


def _batch_mean(s):
  return np.mean(np.exp(_off(s)))


def test_mine_moving_average_follows_its_formula_on_training_calls_only():
  momentum = 0.9
  layer = estimators_stateful.MineEstimator(momentum)
  expected = None
  for t, s in enumerate(_mine_batches()):
    before = layer.log_moving_average.numpy().copy()
    layer(s + 3.0, training=False)  # an evaluation call changes nothing
    assert int(layer.steps.numpy()) == t
    assert layer.log_moving_average.numpy() == before
    layer(s, training=True)
    expected = _batch_mean(s) if expected is None else (
        momentum * expected + (1 - momentum) * _batch_mean(s))
    assert int(layer.steps.numpy()) == t + 1
    assert math.exp(float(layer.log_moving_average.numpy())) == pytest.approx(expected, rel=1e-5)


def test_mine_gradient_divides_by_the_moving_average():
  momentum = 0.9
  layer = estimators_stateful.MineEstimator(momentum)
  batches = _mine_batches()
  for s in batches[:2]:
    layer(s, training=True)
  previous = math.exp(float(layer.log_moving_average.numpy()))
  s = batches[3]  # shifted by 2: its mean differs much from the running average
  scores = tf.Variable(s)
  with tf.GradientTape() as tape:
    bound = layer(scores, training=True)
  grad = tape.gradient(bound.objective, scores).numpy()
  k = len(s)
  m_t = momentum * previous + (1 - momentum) * _batch_mean(s)
  marginal_grad = np.exp(s.astype(np.float64)) / (k * (k - 1))  # grad of mean_O exp S
  expected = np.where(np.eye(k, dtype=bool), 1 / k, -marginal_grad / m_t)
  np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-8)
  dv_grad = np.where(np.eye(k, dtype=bool), 1 / k, -marginal_grad / _batch_mean(s))
  assert np.max(np.abs(dv_grad - expected)) > 1e-3  # so the test tells MINE from DV
  assert float(bound.value) == pytest.approx(_dv_reference(s), rel=1e-5)
  assert float(bound.objective) == float(bound.value)


def test_mine_is_computed_in_log_space():
  """Off-diagonal scores of 300: exp overflows float32, the log-space estimate does not."""
  s = np.full((16, 16), 300.0, np.float32)
  np.fill_diagonal(s, 0.0)
  layer = estimators.build("mine")
  scores = tf.Variable(s)
  for _ in range(2):
    with tf.GradientTape() as tape:
      bound = layer(scores, training=True)
    grad = tape.gradient(bound.objective, scores).numpy()
    assert float(bound.value) == pytest.approx(-300.0, rel=1e-6)
    assert np.all(np.isfinite(grad)) and np.isfinite(float(bound.objective))
  assert float(layer.log_moving_average.numpy()) == pytest.approx(300.0, rel=1e-6)


def test_mine_moving_average_is_checkpointed_bit_for_bit(tmp_path):
  batches = _mine_batches()
  original = estimators_stateful.MineEstimator(0.9)
  for s in batches[:3]:
    original(s, training=True)
  path = tf.train.Checkpoint(estimator=original).save(str(tmp_path / "ckpt"))
  restored = estimators_stateful.MineEstimator(0.9)
  tf.train.Checkpoint(estimator=restored).restore(path).assert_consumed()
  for a, b in zip(original.variables, restored.variables):
    assert a.numpy().tobytes() == b.numpy().tobytes()
  # The next training step is exactly the one the original takes.
  scores = tf.Variable(batches[3])
  outcomes = []
  for layer in (original, restored):
    with tf.GradientTape() as tape:
      bound = layer(scores, training=True)
    outcomes.append([bound.value.numpy(), bound.objective.numpy(),
                     tape.gradient(bound.objective, scores).numpy(),
                     layer.log_moving_average.numpy(), layer.steps.numpy()])
  for a, b in zip(*outcomes):
    assert a.tobytes() == b.tobytes()


def test_mine_under_two_replicas_keeps_one_moving_average(two_cpu_strategy):
  """In the model every replica computes MINE on the same global score matrix. The state must
  stay one value on every device: the first replica's update is kept. Here the replicas get
  different matrices, so that per-replica updates (aggregation 'none') would show."""
  strategy = two_cpu_strategy
  with strategy.scope():
    layer = estimators_stateful.MineEstimator(0.9)

  @tf.function
  def step(per_replica_scores):
    return strategy.run(lambda s: layer(s, training=True).value, args=(per_replica_scores,))

  batches = _mine_batches()
  for s in batches[:2]:
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda ctx, s=s: tf.constant(s + ctx.replica_id_in_sync_group))
    values = strategy.experimental_local_results(step(per_replica))
    assert [float(v) for v in values] == pytest.approx([_dv_reference(s), _dv_reference(s + 1)],
                                                       rel=1e-5)
  expected = math.log(0.9 * _batch_mean(batches[0]) + 0.1 * _batch_mean(batches[1]))
  copies = strategy.experimental_local_results(layer.log_moving_average.value)
  assert [float(c) for c in copies] == pytest.approx([expected] * 2, rel=1e-5)
  assert [int(c) for c in strategy.experimental_local_results(layer.steps.value)] == [2, 2]


# ---------------------------------------------------------------------------------------------
# TUBA and I_alpha baselines.


def _numpy_baseline(layer, y):
  """log a(y) of a LearnedBaselineEstimator, from its weights (float64)."""
  w1, b1 = (v.numpy().astype(np.float64) for v in layer.hidden.weights)
  w2, b2 = (v.numpy().astype(np.float64) for v in layer.head.weights)
  return (np.maximum(y @ w1 + b1, 0) @ w2 + b2)[:, 0]


@pytest.mark.parametrize("name", ["tuba", "interpolated"])
def test_learned_baseline_belongs_to_the_y_of_each_pair(name):
  gin.parse_config(f"{name}.baseline = 'learned'\n{name}.hidden = 8")
  layer = estimators.build(name)
  assert isinstance(layer, estimators_stateful.LearnedBaselineEstimator)
  rng = np.random.default_rng(5)
  s = rng.standard_normal((6, 6)).astype(np.float32)
  y = rng.standard_normal((6, 3)).astype(np.float32)
  scores = tf.Variable(s)
  layer(scores, y)  # builds the baseline MLP; then weights of order 1, not the initial ones,
  for v in layer.trainable_variables:  # so that log a(y) differs clearly between the y_j
    v.assign(rng.standard_normal(v.shape).astype(np.float32))
  with tf.GradientTape() as tape:
    bound = layer(scores, y)
  log_a = _numpy_baseline(layer, y.astype(np.float64))
  reference = {"tuba": lambda a: _tuba_reference(s, a),
               "interpolated": lambda a: _interpolated_reference(s, a, 0.01)}[name]
  assert float(bound.value) == pytest.approx(reference(log_a), rel=1e-5)
  # The baseline enters per column (y_j); a per-row baseline would give another value.
  assert abs(reference(log_a) - reference(log_a[::-1])) > 1e-2
  grads = tape.gradient(bound.objective, layer.trainable_variables)
  assert len(grads) == 4 and all(np.any(g.numpy() != 0) for g in grads)
  with pytest.raises(ValueError, match="needs y"):
    estimators.build(name)(s)


def test_interpolated_at_alpha_zero_is_tuba_with_the_same_baseline():
  rng = np.random.default_rng(2)
  s = rng.standard_normal((7, 7)).astype(np.float32)
  log_a = rng.standard_normal(7).astype(np.float32)
  for baseline in (1.0, log_a):
    assert float(estimators.interpolated_bound(s, baseline, 0.0).value) == pytest.approx(
        float(estimators.tuba_bound(s, baseline).value), rel=1e-5)


def test_interpolated_at_alpha_one_is_leave_one_out_infonce():
  """alpha = 1: the marginal term is exactly 1; what is left is InfoNCE over K - 1 samples."""
  rng = np.random.default_rng(4)
  k = 7
  s = (2 * rng.standard_normal((k, k))).astype(np.float32)
  s64 = s.astype(np.float64)
  loo_nce = np.mean([s64[j, j] - _log_mean_exp(np.delete(s64[:, j], l))
                     for j in range(k) for l in range(k) if l != j])
  assert float(estimators.interpolated_bound(s, 1.0, 1.0).value) == pytest.approx(loo_nce,
                                                                                   rel=1e-5)
  dominant = 30.0 * np.eye(k, dtype=np.float32)
  value = float(estimators.interpolated_bound(dominant, 1.0, 1.0).value)
  assert value == pytest.approx(math.log(k - 1), abs=1e-4) and value <= math.log(k - 1) + 1e-5


def test_leave_one_out_mean_is_exact_next_to_a_dominant_score():
  """Subtracting the left-out term from the total (log(e^L - e^S)) would lose it in float32."""
  s = np.zeros((4, 4), np.float32)
  s[0] = 60.0
  loo = estimators.log_mean_exp_leave_one_out(s).numpy()
  expected = np.array([[_log_mean_exp(np.delete(s[:, j].astype(np.float64), l))
                        for j in range(4)] for l in range(4)])
  np.testing.assert_allclose(loo, expected, rtol=1e-6, atol=1e-6)
  assert np.all(np.abs(loo[0]) < 1e-6)  # leaving the 60 out leaves mean(e^0) = 1


def test_interpolated_gradient_matches_finite_differences():
  rng = np.random.default_rng(6)
  s = rng.standard_normal((5, 5))
  log_a = rng.standard_normal(5)
  scores = tf.Variable(s)  # float64
  with tf.GradientTape() as tape:
    value = estimators.interpolated_bound(scores, log_a, 0.3).value
  grad = tape.gradient(value, scores).numpy()
  eps = 1e-6
  numeric = np.zeros_like(s)
  for index in np.ndindex(s.shape):
    step = np.zeros_like(s)
    step[index] = eps
    numeric[index] = (_interpolated_reference(s + step, log_a, 0.3)
                      - _interpolated_reference(s - step, log_a, 0.3)) / (2 * eps)
  np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# Optimal critics, gin bindings, and the model.


@pytest.mark.parametrize("rho", [0.5, 0.8])
@pytest.mark.parametrize("name,shift", [("dv", 0.0), ("mine", 0.0), ("js", 0.0), ("smile", 0.0),
                                        ("tuba", 1.0), ("interpolated", 1.0), ("nce", 0.0)])
def test_optimal_critic_recovers_gaussian_mi(name, shift, rho):
  """S = log p(y|x)/p(y) + shift: the optimal critic, up to the constant each bound wants
  (TUBA and I_alpha with log a = 1 want NWJ's +1; JS's value is NWJ at S + 1). 8 batches of
  512; the per-batch spread is 0.02-0.04 nats, so 0.03 is about 3 standard errors."""
  true_mi = -0.5 * math.log(1 - rho**2)
  values = [float(estimators.build(name)(
      (shift + _log_density_ratio(*_gaussian_pair(rho, 512, seed), rho)).astype(np.float32))
                  .value) for seed in range(8)]
  assert np.mean(values) == pytest.approx(true_mi, abs=0.03)
  if name == "nce":
    assert max(values) <= math.log(512) + 1e-5


def test_gin_bindings_reach_the_estimators():
  s = _matrices()[2]
  default = float(estimators.build("smile")(s).value)
  gin.parse_config("smile.tau = 1.0")
  assert float(estimators.build("smile")(s).value) == pytest.approx(_smile_reference(s, 1.0),
                                                                    rel=1e-5)
  assert abs(float(estimators.build("smile")(s).value) - default) > 1.0
  gin.parse_config("tuba.log_baseline = 0.0")
  assert float(estimators.build("tuba")(s).value) == pytest.approx(
      float(estimators.js(s).value), rel=1e-6)
  gin.parse_config("interpolated.alpha = 0.5\ninterpolated.log_baseline = 0.5")
  assert float(estimators.build("interpolated")(s).value) == pytest.approx(
      _interpolated_reference(s, 0.5, 0.5), rel=1e-5)
  gin.parse_config("mine.momentum = 0.5")
  layer = estimators.build("mine")
  batches = _mine_batches()
  layer(batches[0], training=True)
  layer(batches[1], training=True)
  assert math.exp(float(layer.log_moving_average.numpy())) == pytest.approx(
      0.5 * _batch_mean(batches[0]) + 0.5 * _batch_mean(batches[1]), rel=1e-5)


@pytest.mark.parametrize("binding", ["tuba.baseline = 'gaussian'", "interpolated.alpha = 1.5",
                                     "interpolated.baseline = 'none'", "mine.momentum = -0.1",
                                     "smile.tau = 0.0"])
def test_invalid_bindings_name_their_key(binding):
  gin.parse_config(binding)
  name = binding.split(".")[0]
  with pytest.raises(ConfigError, match=binding.split(" = ")[0].replace(".", r"\.")):
    estimators.build(name)(_matrices()[0])


def _model_batch(k, seed):
  rng = np.random.default_rng(seed)
  top = rng.uniform(size=(k, 14, 28, 1)).astype(np.float32)
  bottom = np.clip(top[:, ::-1] + 0.1 * rng.standard_normal(top.shape), 0, 1).astype(np.float32)
  return top, bottom


@pytest.mark.parametrize("name", ("interpolated", "mine", "tuba"))
def test_model_takes_an_xla_train_step(name):
  """One XLA-compiled Adam step of the two-view model with each estimator that keeps layers
  or state (TUBA with its learned baseline, whose variables the model must track and train).
  Every estimator also trains a short critic-study run (tests/test_extending.py)."""
  gin.parse_config("mlp.hidden_units = ()\nmlp.dim = 16\ntuba.baseline = 'learned'")
  keras.utils.set_random_seed(0)
  model = model_lib.build_model("mlp", "bilinear", name, (14, 28, 1))
  model.compile(optimizer=keras.optimizers.Adam(1e-3))
  model.optimizer.build(model.trainable_variables)  # else the first call traces twice
  estimator_weights = [v.numpy().copy() for v in getattr(model.estimator, "weights", [])]
  out = tf.function(model.train_step, jit_compile=True)(_model_batch(8, 0))
  assert np.isfinite(float(out["loss"])) and np.isfinite(float(out["bound"]))
  if name == "mine":  # its state belongs to the model (checkpointed), and moved once
    assert any(v is model.estimator.log_moving_average for v in model.non_trainable_variables)
    assert int(model.estimator.steps.numpy()) == 1
  if name == "tuba":  # the learned baseline is trained with the model
    assert any(v is model.estimator.head.kernel for v in model.trainable_variables)
    assert not np.array_equal(estimator_weights[0], model.estimator.hidden.kernel.numpy())
