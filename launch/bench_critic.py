r"""Benchmark of the critics in an XLA-compiled train step (issue 13).

    python -m launch.bench_critic [--critics=bilinear,concat,concat_materialise]
        [--modes=step,fused,critic] [--steps=400] [--rounds=5] [--steps_per_loop=100]

For each critic it times, with the MLP encoders, InfoNCE and Adam(1e-4) at batch K = 128 on
random (x_top, x_bottom) halves of shape [K, 14, 28, 1]:
- step:   one `tf.function(model.train_step, jit_compile=True)` call per step;
- fused:  `steps_per_loop` steps in one XLA computation (a `tf.range` loop over train_step);
- critic: the critic alone, scores and gradients w.r.t. its inputs and weights, on random
          [K, 100] embeddings (what the critic adds to a step).
'concat' is the concat critic as configured by default (under XLA with one hidden layer: the
recomputing custom-gradient form), 'concat_materialise' the same layer with
implementation='materialise' (hidden activations of all K x K pairs formed, then autodiff: the
computation before issue 13). The configurations are timed in turns, `rounds` times, so that
load from other processes falls on all of them alike; the median and the best round are
printed, in steps per second. Compare numbers within one run: on a shared machine the absolute
speeds move with the load.
"""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import gin
import keras
import numpy as np
import tensorflow as tf

from mi_repr_tf import model as model_lib

FLAGS = flags.FLAGS
flags.DEFINE_list("critics", ["bilinear", "concat", "concat_materialise"], "Critics to time.")
flags.DEFINE_list("modes", ["step", "fused", "critic"], "What to time (see the docstring).")
flags.DEFINE_integer("steps", 400, "Steps per timed round.")
flags.DEFINE_integer("rounds", 5, "Timed rounds per configuration, taken in turns.")
flags.DEFINE_integer("steps_per_loop", 100, "Steps per call in the fused mode.")
flags.DEFINE_integer("batch_size", 128, "K.")

HALF_SHAPE = (14, 28, 1)
NUM_BATCHES = 8  # distinct random batches, used in turn


def build(critic):
  """The MLP model with `critic` ('concat_materialise': concat on the general path)."""
  gin.clear_config()
  name = critic
  if critic == "concat_materialise":
    gin.bind_parameter("concat.implementation", "materialise")
    name = "concat"
  keras.utils.set_random_seed(0)
  model = model_lib.build_model("mlp", name, "nce", HALF_SHAPE)
  gin.clear_config()
  optimizer = keras.optimizers.Adam(1e-4)
  model.compile(optimizer=optimizer)
  optimizer.build(model.trainable_variables)
  return model


def step_runner(model, images):
  """Runs n steps with one XLA call per step."""
  step = tf.function(model.train_step, jit_compile=True)
  batches = [(images[i, 0], images[i, 1]) for i in range(NUM_BATCHES)]

  def run(n):
    for i in range(n):
      out = step(batches[i % NUM_BATCHES])
    out["loss"].numpy()
  return run


def fused_runner(model, images):
  """Runs n steps as calls of `steps_per_loop` steps, each one XLA computation."""
  @tf.function(jit_compile=True)
  def loop(count):
    losses = tf.TensorArray(tf.float32, size=count)
    for i in tf.range(count):
      pair = images[i % NUM_BATCHES]
      losses = losses.write(i, model.train_step((pair[0], pair[1]))["loss"])
    return losses.stack()

  def run(n):
    for _ in range(max(1, n // FLAGS.steps_per_loop)):
      out = loop(tf.constant(FLAGS.steps_per_loop))
    out.numpy()
  return run


def critic_runner(model, images):
  """Runs n forward + backward passes of the critic alone on random embeddings."""
  del images
  rng = np.random.default_rng(1)
  z1, z2, g = (tf.constant(rng.standard_normal(s), tf.float32) for s in
               ((FLAGS.batch_size, 100), (FLAGS.batch_size, 100),
                (FLAGS.batch_size, FLAGS.batch_size)))
  critic = model.critic

  @tf.function(jit_compile=True)
  def fwd_bwd(z1, z2):
    with tf.GradientTape() as tape:
      tape.watch([z1, z2])
      loss = tf.reduce_sum(critic(z1, z2) * g)
    return [loss] + tape.gradient(loss, [z1, z2] + critic.trainable_variables)

  def run(n):
    for _ in range(n):
      out = fwd_bwd(z1, z2)
    out[0].numpy()
  return run


RUNNERS = {"step": step_runner, "fused": fused_runner, "critic": critic_runner}


def main(argv):
  del argv
  rng = np.random.default_rng(0)
  images = tf.constant(rng.uniform(size=(NUM_BATCHES, 2, FLAGS.batch_size) + HALF_SHAPE),
                       tf.float32)
  runs = {}
  for critic in FLAGS.critics:
    model = build(critic)
    for mode in FLAGS.modes:
      run = RUNNERS[mode](model, images)
      run(FLAGS.steps_per_loop if mode == "fused" else 2)  # compile and warm up
      runs[(critic, mode)] = (run, [])
  for _ in range(FLAGS.rounds):
    for (critic, mode), (run, rates) in runs.items():
      start = time.perf_counter()
      run(FLAGS.steps)
      steps = (FLAGS.steps // FLAGS.steps_per_loop * FLAGS.steps_per_loop
               if mode == "fused" else FLAGS.steps)
      rates.append(steps / (time.perf_counter() - start))
  print(f"{'critic':20s} {'mode':7s} {'median/s':>9s} {'best/s':>9s}  (K={FLAGS.batch_size}, "
        f"{FLAGS.rounds} rounds of {FLAGS.steps})")
  for (critic, mode), (_, rates) in runs.items():
    print(f"{critic:20s} {mode:7s} {statistics.median(rates):9.1f} {max(rates):9.1f}")


if __name__ == "__main__":
  app.run(main)
