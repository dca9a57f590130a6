"""mi_repr_tf: Tschannen et al., "On Mutual Information Maximization for Representation
Learning" (ICLR 2020), in TensorFlow 2 / Keras 3."""

__version__ = "0.1.0"
