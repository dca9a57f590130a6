r"""Benchmark of the linear probe: where its time goes, and float32 against float64 inputs.

    python -m launch.bench_probe [--seeds=5] [--data_dir=/usr/share/datasets/fashion-mnist]

The probe is scikit-learn's SAGA logistic regression (tol 0.1, C 10) on MinMax-scaled
features, as `mi_repr_tf.probe`. This script fits it on two feature sets of Fashion-MNIST
(the raw x_top pixels, and the embeddings of a freshly initialised MLP encoder) with the
features as float64 and as float32, for several SAGA seeds, and prints per dtype the mean
time of the scaling, the fit and the scoring, SAGA's epochs, and the accuracies: the float32
accuracies should lie within the spread over seeds of the float64 ones.
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import keras
import numpy as np
from sklearn.preprocessing import MinMaxScaler

from mi_repr_tf import data as data_lib
from mi_repr_tf import evaluation
from mi_repr_tf import model as model_lib
from mi_repr_tf import probe as probe_lib

FLAGS = flags.FLAGS
flags.DEFINE_integer("seeds", 5, "SAGA seeds per feature set and dtype.")
flags.DEFINE_string("data_dir", "/usr/share/datasets/fashion-mnist", "Fashion-MNIST IDX folder.")


def feature_sets(dataset):
  """{name: (train_x, train_y, test_x, test_y)} as float64 arrays."""
  keras.utils.set_random_seed(0)
  model = model_lib.build_model("mlp", "bilinear", "nce", dataset.half_shape)
  evaluator = evaluation.Evaluator(model, dataset, 128, jit_compile=True)
  _, _, emb = evaluator.measure(0)
  pixels = {}
  for split_name, split in (("train", dataset.train), ("test", dataset.test)):
    tops = [x_top.numpy().reshape(len(y), -1)
            for x_top, _, y in data_lib.eval_batches(split, 2048, 0.0, 0)]
    pixels[split_name] = np.concatenate(tops)
  return {
      "pixels (392)": (pixels["train"], emb["train_labels"], pixels["test"],
                       emb["test_labels"]),
      "MLP embeddings": tuple(emb[k] for k in evaluation.EMBEDDING_KEYS),
  }


def time_probe(train_x, train_y, test_x, test_y, dtype, seed):
  """Seconds of (scale, fit, score), SAGA's epochs and the accuracy: the steps of
  probe.linear_probe, with its classifier, timed one by one."""
  t0 = time.perf_counter()
  train_x = np.asarray(train_x, dtype=dtype).reshape(len(train_x), -1)
  test_x = np.asarray(test_x, dtype=dtype).reshape(len(test_x), -1)
  scaler = MinMaxScaler().fit(train_x)
  scaled_train, scaled_test = scaler.transform(train_x), scaler.transform(test_x)
  t1 = time.perf_counter()
  classifier = probe_lib.fit_quietly(probe_lib.classifier(seed=seed), scaled_train, train_y)
  t2 = time.perf_counter()
  accuracy = classifier.score(scaled_test, test_y)
  t3 = time.perf_counter()
  return t1 - t0, t2 - t1, t3 - t2, int(classifier.n_iter_[0]), accuracy, classifier.coef_.dtype


def main(argv):
  del argv
  dataset = data_lib.load_dataset(name="fashion_mnist", data_dir=FLAGS.data_dir)
  print("| features | dtype (coef) | scale s | fit s | score s | epochs | accuracy per seed |")
  print("|---|---|---|---|---|---|---|")
  for name, arrays in feature_sets(dataset).items():
    for dtype in (np.float64, np.float32):
      rows = [time_probe(*arrays, dtype, seed) for seed in range(FLAGS.seeds)]
      mean = lambda i: np.mean([r[i] for r in rows])  # pylint: disable=cell-var-from-loop
      accuracies = " ".join(f"{r[4]:.4f}" for r in rows)
      print(f"| {name} | {np.dtype(dtype).name} ({rows[0][5]}) | {mean(0):.3f} | {mean(1):.3f} "
            f"| {mean(2):.3f} | {mean(3):.1f} | {accuracies} |")


if __name__ == "__main__":
  app.run(main)
