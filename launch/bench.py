r"""Benchmark of the hot paths: the train step and one evaluation.

    python -m launch.bench [--configs=mlp:bilinear,convnet:bilinear] [--steps=2000]
        [--data_dir=/usr/share/datasets/fashion-mnist] [--nojit] [--breakdown]

For each encoder x critic at batch 128 it prints: training steps per second (the real
training loop, `experiments.two_view.make_train_loop`: with XLA and `fused`, whole loops of steps compiled
as one computation, as the gin files choose per configuration; else a tf.function loop over
the tf.data pipeline, one XLA call per step), the train step's FLOPs
(counted by TensorFlow's profiler on the step's graph: forward, backward and Adam), the
achieved FLOP/s and its ratio to the FLOP/s of a large fp32 matmul measured in the same
process, and the time of one evaluation split into the test pass (test bound and test embeddings), the
notebook's bound, the training-set embeddings and the probe.
Data: the Fashion-MNIST IDX files when present, else random images of MNIST's shape.
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import keras
import numpy as np
import tensorflow as tf

from mi_repr_tf import data as data_lib
from mi_repr_tf import evaluation
from mi_repr_tf import model as model_lib
from mi_repr_tf.experiments import two_view

FLAGS = flags.FLAGS
flags.DEFINE_list("configs", ["mlp:bilinear", "mlp:separable", "mlp:concat", "convnet:bilinear"],
                  "encoder:critic pairs, optionally encoder:critic:fused or "
                  "encoder:critic:unfused to override the gin files' choice of "
                  "train.fuse_steps.")
flags.DEFINE_integer("steps", 2000, "Timed training steps per configuration.")
flags.DEFINE_integer("batch_size", 128, "K.")
flags.DEFINE_integer("steps_per_loop", 100, "Steps per compiled loop call.")
flags.DEFINE_string("data_dir", "/usr/share/datasets/fashion-mnist", "IDX folder, if present.")
flags.DEFINE_bool("jit", True, "XLA-compile the train step and evaluation passes.")
flags.DEFINE_integer("matmul_size", 4096, "n of the n x n reference matmul.")
flags.DEFINE_bool("breakdown", False, "Also time the step on one fixed batch (no input "
                  "pipeline) and the gradient alone (no Adam update), to see what limits it.")


def matmul_flops_per_second(n, seconds=3.0):
  """FLOP/s of an n x n fp32 matmul (2 n^3 FLOPs), compiled with XLA, best of several runs."""
  a = tf.random.normal([n, n])
  b = tf.random.normal([n, n])
  matmul = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)), jit_compile=True)
  matmul(a, b).numpy()
  best, start = 0.0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    t0 = time.perf_counter()
    matmul(a, b).numpy()
    best = max(best, 2 * n**3 / (time.perf_counter() - t0))
  return best


def step_flops(model, batch):
  """FLOPs of one train step as TensorFlow's profiler counts them on the step's graph."""
  graph = tf.function(model.train_step).get_concrete_function(batch).graph
  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options["output"] = "none"
  return tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops


def load(data_dir):
  if data_dir and data_lib.find_idx_files(data_dir):
    return data_lib.load_dataset(name="fashion_mnist", data_dir=data_dir)
  rng = np.random.default_rng(0)
  split = lambda n: data_lib.Split(rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8),
                                   rng.integers(0, 10, n))
  return data_lib.ImageDataset("random", split(60000), split(10000))


def bench_config(encoder, critic, loop=None, *, dataset, peak):
  keras.utils.set_random_seed(0)
  model = model_lib.build_model(encoder, critic, "nce", dataset.half_shape)
  optimizer = keras.optimizers.Adam(1e-4)
  model.compile(optimizer=optimizer)
  optimizer.build(model.trainable_variables)
  batches = data_lib.train_batches(dataset.train, FLAGS.batch_size, seed=0)
  flops = step_flops(model, next(iter(batches)))

  # Without a loop given, as the gin files set train.fuse_steps (off for the ConvNet).
  fuse = encoder != "convnet" if loop is None else loop == "fused"
  train_loop = two_view.make_train_loop(model, tf.distribute.get_strategy(), dataset,
                                         FLAGS.batch_size, 0, FLAGS.jit, fuse)
  n = FLAGS.steps_per_loop
  train_loop(0, n)  # compile and warm up
  loops = max(1, FLAGS.steps // n)
  t0 = time.perf_counter()
  for i in range(loops):
    train_loop((i + 1) * n, n)
  steps_per_second = loops * FLAGS.steps_per_loop / (time.perf_counter() - t0)

  breakdown = {}
  if FLAGS.breakdown:
    batch = next(iter(batches))
    step = tf.function(model.train_step, jit_compile=FLAGS.jit)

    def gradient_only(data):
      with tf.GradientTape() as tape:
        loss = model.bound_and_loss(data[0], data[1], training=True)[1]
      return tape.gradient(loss, model.trainable_variables)

    gradient = tf.function(gradient_only, jit_compile=FLAGS.jit)
    for name, fn in (("fixed batch steps/s", step), ("gradient only steps/s", gradient)):
      fn(batch)
      t0 = time.perf_counter()
      for _ in range(FLAGS.steps // 2):
        out = fn(batch)
      tf.nest.map_structure(lambda t: t.numpy(), out)
      breakdown[name] = (FLAGS.steps // 2) / (time.perf_counter() - t0)

  evaluator = evaluation.Evaluator(model, dataset, FLAGS.batch_size, jit_compile=FLAGS.jit)
  evaluator.measure(0)  # compile
  numbers, _, embeddings = evaluator.measure(1000)
  t0 = time.perf_counter()
  evaluation.probe(embeddings, seed=0)
  numbers["eval_seconds"]["probe"] = time.perf_counter() - t0
  achieved = flops * steps_per_second
  return {"config": f"{encoder} + {critic}", "fused": str(fuse and FLAGS.jit),
          "steps/s": steps_per_second,
          "MFLOP/step": flops / 1e6, "GFLOP/s": achieved / 1e9, "of matmul": achieved / peak,
          **breakdown, **{f"eval {k} s": v for k, v in numbers["eval_seconds"].items()}}


def parse_configs(configs):
  """[(encoder, critic[, loop])] of --configs, every entry checked before any timing."""
  parsed = []
  for config in configs:
    parts = config.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("fused", "unfused")):
      raise app.UsageError(f"--configs: {config!r}; valid: encoder:critic or "
                           "encoder:critic:fused / encoder:critic:unfused")
    parsed.append(tuple(parts))
  return parsed


def main(argv):
  del argv
  configs = parse_configs(FLAGS.configs)
  dataset = load(FLAGS.data_dir)
  peak = matmul_flops_per_second(FLAGS.matmul_size)
  print(f"data: {dataset.name} ({len(dataset.train)} train, {len(dataset.test)} test); "
        f"batch {FLAGS.batch_size}; XLA {FLAGS.jit}; {FLAGS.matmul_size}^2 fp32 matmul: "
        f"{peak / 1e9:.1f} GFLOP/s")
  rows = [bench_config(*c, dataset=dataset, peak=peak) for c in configs]
  keys = list(rows[0])
  print("| " + " | ".join(keys) + " |")
  print("|" + "---|" * len(keys))
  for row in rows:
    cells = [row[k] if isinstance(row[k], str) else
             (f"{row[k]:.0%}" if k == "of matmul" else f"{row[k]:.2f}") for k in keys]
    print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
  app.run(main)
