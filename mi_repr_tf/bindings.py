"""A run's gin configuration as {"selector.param": value}: parsing the operative config text.

A run directory holds `operative_config.gin` (see `rundir`); sweeps, reports and TensorBoard
read a run's configuration from that file alone. `parse_operative_config` turns its text into
{"train.critic": "bilinear", ...}. Pure Python (no TensorFlow).
"""

import ast

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
  except (ValueError, SyntaxError, MemoryError, RecursionError):
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
