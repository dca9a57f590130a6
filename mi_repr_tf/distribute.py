"""`tf.distribute` strategies for training, and how each worker reads its part of a batch.

    distribute.strategy = 'default'       one device (the default)
    distribute.strategy = 'mirrored'      all local GPUs (CPU if none); with
                                          distribute.cpu_devices = N: N logical CPU devices
    distribute.strategy = 'multi_worker'  MultiWorkerMirroredStrategy, cluster from TF_CONFIG

The estimators always see the global batch: `model.cross_replica_concat` gathers the
embeddings of every replica before the critic scores them (see `model.py`).
"""

import json
import os

import gin
import tensorflow as tf

from mi_repr_tf.errors import ConfigError, check_choice

STRATEGIES = ("default", "mirrored", "multi_worker")
# One MirroredStrategy per device list and process: two strategies over the same devices in
# one process collide in their collective keys (e.g. several runs in one Python session).
_MIRRORED = {}


def _mirrored(devices=None):
  key = tuple(devices) if devices else None
  if key not in _MIRRORED:
    _MIRRORED[key] = tf.distribute.MirroredStrategy(list(key) if key else None)
  return _MIRRORED[key]


def _logical_cpus(n):
  """Splits the CPU into `n` logical devices; only possible before TF initialises devices."""
  cpu = tf.config.list_physical_devices("CPU")[0]
  current = tf.config.get_logical_device_configuration(cpu)
  if current is not None and len(current) >= n:
    return [f"/cpu:{i}" for i in range(n)]
  try:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * n)
  except RuntimeError as e:
    raise ConfigError(
        f"distribute.cpu_devices={n}: TensorFlow's devices were initialised before the "
        "strategy was built, so the CPU cannot be split any more") from e
  return [f"/cpu:{i}" for i in range(n)]


@gin.configurable("distribute")
def get_strategy(strategy="default", cpu_devices=None):
  """The strategy named `strategy` (one of STRATEGIES).

  Args:
    strategy: 'default', 'mirrored' or 'multi_worker'.
    cpu_devices: for 'mirrored', mirror over this many logical CPU devices instead of the
      GPUs (for tests and CPU-only machines).
  """
  check_choice("distribute.strategy", strategy, STRATEGIES)
  if strategy == "default":
    return tf.distribute.get_strategy()
  if strategy == "mirrored":
    if cpu_devices is not None:
      if not isinstance(cpu_devices, int) or cpu_devices < 1:
        raise ConfigError(f"distribute.cpu_devices={cpu_devices!r} is not valid; it must be "
                          "None or an integer >= 1")
      return _mirrored(_logical_cpus(cpu_devices))
    return _mirrored()
  if "TF_CONFIG" not in os.environ:
    raise ConfigError("distribute.strategy='multi_worker' needs the TF_CONFIG environment "
                      "variable describing the cluster and this worker's task")
  return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy):
  """Whether this process writes results, TensorBoard and the run's checkpoints."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  if resolver.task_type == "chief":
    return True
  has_chief = "chief" in json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
  return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def task_id(strategy):
  resolver = getattr(strategy, "cluster_resolver", None)
  return 0 if resolver is None or resolver.task_id is None else int(resolver.task_id)


def distribute_batches(strategy, make_global_batches):
  """A distributed dataset: each replica gets its contiguous slice of every global batch.

  `make_global_batches()` returns a dataset of global batches (tuples of tensors with the
  batch on axis 0). Worker w with L local replicas takes rows [w L b, (w + 1) L b) of each
  global batch (b = per-replica batch) and yields them as L consecutive per-replica batches,
  which `distribute_datasets_from_function` hands to its replicas in order; so replica r
  holds rows [r b, (r + 1) b), the order `cross_replica_concat` reassembles.
  """
  def dataset_fn(context):
    ds = make_global_batches()
    if strategy.num_replicas_in_sync == 1:
      return ds
    local = strategy.num_replicas_in_sync // context.num_input_pipelines
    worker = context.input_pipeline_id

    def per_replica(*batch):
      rows = tf.shape(batch[0])[0] // strategy.num_replicas_in_sync
      sliced = []
      for x in batch:
        part = x[worker * local * rows:(worker + 1) * local * rows]
        sliced.append(tf.reshape(part, tf.concat([[local, rows], tf.shape(x)[1:]], 0)))
      return tf.data.Dataset.from_tensor_slices(tuple(sliced))

    return ds.flat_map(per_replica).prefetch(tf.data.AUTOTUNE)

  return strategy.distribute_datasets_from_function(dataset_fn)
