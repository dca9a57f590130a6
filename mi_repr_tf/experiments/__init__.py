"""The experiments, each registered where it is defined (`registry.get("experiment", name)`).

Each supplies what is its own to the run controller (`runner`): build its models, train `n`
steps from step `s`, and measure at a step. See `runner` for the interface.
"""

from mi_repr_tf.experiments import adversarial  # noqa: F401  (registers 'adversarial')
from mi_repr_tf.experiments import gaussian  # noqa: F401  (registers 'gaussian')
from mi_repr_tf.experiments import staircase  # noqa: F401
from mi_repr_tf.experiments import two_view  # noqa: F401  (registers 'two_view')
