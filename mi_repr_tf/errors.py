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
