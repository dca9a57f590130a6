"""Errors that the command line reports as one clear line (no traceback)."""


class ConfigError(ValueError):
  """A configuration value, gin binding or file is invalid.

  The message names the bad key or file and what would be valid.
  """


class DataError(ConfigError):
  """A dataset could not be found or read."""


class NonFiniteLossError(RuntimeError):
  """Training produced a NaN or infinite loss; the message names the step."""


def check_choice(key, value, choices):
  """Returns `value` if it is one of `choices`, else raises a ConfigError naming `key`."""
  if value not in choices:
    raise ConfigError(
        f"{key}={value!r} is not valid; choose one of: "
        + ", ".join(repr(c) for c in sorted(choices)))
  return value


def check_int(key, value, minimum):
  """Returns `value` if it is an integer >= `minimum` (not a bool), else a ConfigError."""
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    raise ConfigError(f"{key}={value!r} is not valid; it must be an integer >= {minimum}")
  return value


def check_number(key, value, minimum=None, strictly=False):
  """Returns `value` as a float if it is a finite number (> or >= `minimum`), else a
  ConfigError naming `key`."""
  import math  # pylint: disable=g-import-not-at-top
  ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
  if ok and minimum is not None:
    ok = value > minimum if strictly else value >= minimum
  if not ok:
    bound = "" if minimum is None else f" {'>' if strictly else '>='} {minimum:g}"
    raise ConfigError(f"{key}={value!r} is not valid; it must be a finite number{bound}")
  return float(value)
