"""Registries where defining is registering: estimators, critics, encoders and experiments.

    @registry.register("critic", "bilinear")
    def bilinear(): ...

    registry.get("critic", "bilinear", key="train.critic")   # -> bilinear

An unknown name is one ConfigError naming the gin key and every valid name. Each component
module registers what it defines when it is imported; `get` imports the modules that define
a kind first, so asking for a name never depends on what the caller happened to import.
"""

import importlib

from mi_repr_tf.errors import ConfigError

# kind -> the modules whose import registers every component of that kind.
_MODULES = {
    "estimator": ("mi_repr_tf.estimators",),
    "critic": ("mi_repr_tf.critics",),
    "encoder": ("mi_repr_tf.encoders", "mi_repr_tf.realnvp"),
    "experiment": ("mi_repr_tf.experiments",),
}
_ENTRIES = {kind: {} for kind in _MODULES}


def _check_kind(kind):
  if kind not in _ENTRIES:
    raise ValueError(f"unknown registry kind {kind!r}; kinds: {', '.join(sorted(_ENTRIES))}")


def register(kind, name):
  """Decorator registering `obj` as the `kind` named `name`; returns `obj` unchanged.

  Registering a second, different object under a taken name is an error (a typo or a
  clash between two modules); registering the same object again is allowed (re-imports).
  """
  _check_kind(kind)

  def decorator(obj):
    entries = _ENTRIES[kind]
    old = entries.get(name)
    if old is not None and getattr(old, "__qualname__", old) != getattr(obj, "__qualname__",
                                                                         obj):
      raise ValueError(f"{kind} {name!r} is registered twice: {old!r} and {obj!r}")
    entries[name] = obj
    return obj

  return decorator


def _load(kind):
  for module in _MODULES[kind]:
    importlib.import_module(module)


def load_all():
  """Imports every module that registers components (and so defines their gin
  configurables): call it before parsing gin files."""
  for kind in _MODULES:
    _load(kind)


def names(kind):
  """The registered names of `kind`, sorted."""
  _check_kind(kind)
  _load(kind)
  return sorted(_ENTRIES[kind])


def get(kind, name, key=None):
  """The object registered as the `kind` named `name`.

  Raises ConfigError naming `key` (the gin binding that chose it, default `kind`) and the
  valid names.
  """
  _check_kind(kind)
  _load(kind)
  entries = _ENTRIES[kind]
  if not isinstance(name, str) or name not in entries:
    raise ConfigError(f"{key or kind}={name!r} is not valid; choose one of: "
                      + ", ".join(repr(n) for n in sorted(entries)))
  return entries[name]


def unregister(kind, name):
  """Removes a registration (for tests that register a toy component)."""
  _check_kind(kind)
  _ENTRIES[kind].pop(name, None)
