"""What identifies a run: the bindings of its operative gin config, and the TensorBoard
hparams summary made from them.

A run directory holds `operative_config.gin` (see `rundir`); sweeps, reports and TensorBoard
read a run's configuration from that file alone, so no other metadata has to be kept in step
with it. `parse_operative_config` turns the file into {"train.critic": "bilinear", ...}.

With `write_hparams` every run logs its bindings as TensorBoard hparams: pointed at a sweep
folder, TensorBoard's HPARAMS tab lists the runs with their encoder, critic, estimator, seed,
... as columns to filter and sort by, next to the final accuracy and test bound.
"""

import ast
import re

# Bindings that say where or how a run executes, not what it computes: left out of hparams.
_NOT_HPARAMS = re.compile(r"(^|\.)(data_dir|download|jit_compile|steps_per_loop|"
                          r"log_every_secs|pixel_baseline)$")
_OPEN, _CLOSE = "([{", ")]}"


def _depth_change(text):
  """Net bracket depth of `text`, ignoring brackets inside quoted strings."""
  depth, quote, escaped = 0, None, False
  for ch in text:
    if quote:
      if escaped:
        escaped = False
      elif ch == "\\":
        escaped = True
      elif ch == quote:
        quote = None
    elif ch in "'\"":
      quote = ch
    elif ch in _OPEN:
      depth += 1
    elif ch in _CLOSE:
      depth -= 1
  return depth


def parse_value(text):
  """A gin value as a Python value; references (@fn), macros (%X) etc. stay strings."""
  text = text.strip()
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def parse_operative_config(text):
  """{"selector.param": value} for every binding in a gin config string.

  Comments and blank lines are skipped; a value continued over several lines (gin wraps
  long lists and dicts) is joined. Values are Python literals where they parse as one.
  """
  bindings, key, parts, depth = {}, None, [], 0
  for line in text.splitlines():
    if key is not None:  # inside a value that spans lines
      parts.append(line.strip())
      depth += _depth_change(line)
      if depth <= 0:
        bindings[key] = parse_value(" ".join(parts))
        key = None
      continue
    stripped = line.strip()
    if not stripped or stripped.startswith("#") or "=" not in stripped:
      continue
    name, value = stripped.split("=", 1)
    depth = _depth_change(value)
    if depth > 0:
      key, parts = name.strip(), [value.strip()]
    else:
      bindings[name.strip()] = parse_value(value)
  if key is not None:  # an unbalanced value at the end: keep it as text
    bindings[key] = " ".join(parts)
  return bindings


def read_config(path):
  """The bindings of the gin config file at `path` ({} if there is none)."""
  try:
    with open(path) as f:
      return parse_operative_config(f.read())
  except FileNotFoundError:
    return {}


def hparams_from_config(bindings):
  """TensorBoard hparams (name -> bool, int, float or str) from parsed gin bindings.

  Every binding is kept except the ones that only say where or how a run executes (data
  directory, XLA, loop size). Values TensorBoard cannot hold (None, lists, references)
  become their text.
  """
  hparams = {}
  for key, value in sorted(bindings.items()):
    if _NOT_HPARAMS.search(key):
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
  hp.hparams(hparams_from_config(parse_operative_config(config_str)))
