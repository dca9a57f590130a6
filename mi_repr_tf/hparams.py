"""The TensorBoard hparams summary of a run, made from its operative gin config.

With `write_hparams` every run logs its bindings as TensorBoard hparams: pointed at a sweep
folder, TensorBoard's HPARAMS tab lists the runs with their encoder, critic, estimator, seed,
... as columns to filter and sort by, next to the final accuracy and test bound. The
execution-only settings (`rundir.is_execution_setting`) are left out.
"""

from mi_repr_tf import bindings as bindings_lib
from mi_repr_tf import rundir


def hparams_from_config(bindings):
  """TensorBoard hparams (name -> bool, int, float or str) from parsed gin bindings.

  Every binding is kept except the ones that only say where or how a run executes (data
  directory, XLA, loop size). Values TensorBoard cannot hold (None, lists, references)
  become their text.
  """
  hparams = {}
  for key, value in sorted(bindings.items()):
    if rundir.is_execution_setting(key):
      continue
    if not isinstance(value, (bool, int, float, str)):
      value = repr(value)
    hparams[key] = value
  return hparams


def write_hparams(config_str):
  """Writes the hparams summary of a run's operative config with the default summary writer.

  Call it inside `writer.as_default()`, once, when a run starts.
  """
  from tensorboard.plugins.hparams import api as hp  # pylint: disable=g-import-not-at-top
  hp.hparams(hparams_from_config(bindings_lib.parse_operative_config(config_str)))
