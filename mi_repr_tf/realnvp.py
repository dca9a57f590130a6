"""The invertible RealNVP encoder of Section 3.1 (Dinh et al., 2016), built from TFP bijectors.

g(x) = P_n o C_n o ... o P_1 o C_1 (x) on the flattened half image (392 values on MNIST):
- each coupling C_k keeps the first half of its input, x0 = x[:d/2], and transforms the other
  half with an MLP of x0 (Section 3.1: "30 coupling layers, and each of them computes the shift
  using a separate MLP with two ReLU hidden layers, each with 512 units"):
    'shift':           y1 = x1 + t(x0)                       (volume preserving; experiment E1)
    'shift_and_scale': y1 = x1 * (softplus(s(x0)) + 1e-7) + t(x0)   (Appendix B; experiment E2)
  The softplus scale replaces RealNVP's exp(s) as in the authors' notebook.
- each coupling is followed by a fixed random permutation P_k of all coordinates.

Every layer of the coupling MLPs is initialised truncated-normal with stddev 1e-4 and zero bias,
so at initialisation each coupling is within about 1e-4 of the identity ('shift') or of a fixed
diagonal scaling by softplus(0) = log 2 ('shift_and_scale'): g starts as a (scaled) permutation
of the pixels, which a linear probe sees exactly as the raw pixels.

Whatever the weights, g is a bijection with an exact inverse (`RealNVPEncoder.inverse`), so
I(g1(x_top); g2(x_bottom)) = I(x_top; x_bottom) for every parameter setting (Section 3.1).

TFP notes (see shared/STACK.md): each coupling network is a Keras layer held by the Keras model
(so its variables are tracked, trained and checkpointed), and the bijector closes over it.
Bijectors cache the results of forward and inverse per input tensor; `call` and `inverse` pass a
fresh tensor each time, so `inverse(call(x))` really inverts rather than returning a cached x,
and a forward pass inside a GradientTape is never a cached one.
"""

import math

import gin
import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from mi_repr_tf import registry
from mi_repr_tf.errors import ConfigError, check_choice

tfb = tfp.bijectors

COUPLINGS = ("shift", "shift_and_scale")
SCALE_EPSILON = 1e-7


def _coupling_net(hidden_units, output_units, init_stddev, name):
  """MLP of the masked half: Dense(h, relu) for h in hidden_units -> Dense(output_units)."""
  def dense(units, activation=None):
    return keras.layers.Dense(
        units, activation=activation,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=init_stddev),
        bias_initializer="zeros")
  return keras.Sequential([dense(u, "relu") for u in hidden_units] + [dense(output_units)],
                          name=name)


class RealNVPEncoder(keras.Model):
  """Invertible encoder [B, H, W, C] -> [B, H * W * C]: couplings, each followed by a permutation.

  Args:
    input_shape: shape of one input, e.g. (14, 28, 1); the dimension d is its product.
    permutations: one permutation of range(d) per coupling (fixed, not trained).
    hidden_units: hidden layer widths of each coupling's MLP.
    coupling: 'shift' or 'shift_and_scale' (see the module docstring).
    init_stddev: stddev of the truncated-normal initialisation of the coupling MLPs.
  """

  def __init__(self, input_shape, permutations, hidden_units=(512, 512), coupling="shift",
               init_stddev=1e-4, **kwargs):
    super().__init__(**kwargs)
    self.event_shape = tuple(int(s) for s in input_shape)
    self.dim = math.prod(self.event_shape)
    self.num_masked = self.dim // 2
    self.coupling = coupling
    # Plain numpy (a tuple: not a Keras-tracked list): fixed, not trained, not checkpointed.
    self.permutations = tuple(np.asarray(p, dtype=np.int32) for p in permutations)
    num_transformed = self.dim - self.num_masked
    outputs = num_transformed if coupling == "shift" else 2 * num_transformed
    # One attribute per coupling network. Keras would track a list of layers for training, but
    # tf.train.Checkpoint does not save layers held in a list (Keras 3.15), only attributes.
    self.num_couplings = len(self.permutations)
    for k in range(self.num_couplings):
      net = _coupling_net(hidden_units, outputs, init_stddev, name=f"coupling_{k}")
      net.build((None, self.num_masked))
      setattr(self, f"coupling_{k}", net)
    steps = []
    for net, permutation in zip(self.coupling_nets, self.permutations):
      steps.append(self._coupling_bijector(net))
      steps.append(tfb.Permute(permutation=permutation))
    # tfb.Chain applies its list from last to first.
    self._bijector = tfb.Chain(list(reversed(steps)), name="realnvp")

  @property
  def coupling_nets(self):
    """The coupling networks, first applied first."""
    return [getattr(self, f"coupling_{k}") for k in range(self.num_couplings)]

  def _coupling_bijector(self, net):
    if self.coupling == "shift":
      return tfb.RealNVP(num_masked=self.num_masked,
                         shift_and_log_scale_fn=lambda x0, d: (net(x0), None),
                         is_constant_jacobian=True)

    def shift_and_softplus_scale(x0, d):
      shift, raw_scale = tf.split(net(x0), 2, axis=-1)
      return tfb.Chain([tfb.Shift(shift),
                        tfb.Scale(tf.nn.softplus(raw_scale) + SCALE_EPSILON)])
    return tfb.RealNVP(num_masked=self.num_masked, bijector_fn=shift_and_softplus_scale)

  @property
  def bijector(self):
    """The tfb.Chain computing g on flattened inputs [B, d]."""
    return self._bijector

  def call(self, x, training=False):
    del training  # no dropout or normalisation: the same map in training and evaluation
    flat = tf.reshape(x, (-1, self.dim))  # a fresh tensor: never a bijector cache hit
    return self._bijector.forward(flat)

  def min_scale(self, x):
    """The smallest coupling scale softplus(s(x0)) + 1e-7 met by the inputs x [B, H, W, C]
    on their way through g, as a float; None for shift-only couplings (no scales)."""
    if self.coupling == "shift":
      return None
    h = tf.reshape(tf.convert_to_tensor(x, tf.float32), (-1, self.dim))
    smallest = math.inf
    for net, permutation in zip(self.coupling_nets, self.permutations):
      x0, x1 = h[:, :self.num_masked], h[:, self.num_masked:]
      shift, raw_scale = tf.split(net(x0), 2, axis=-1)
      scale = tf.nn.softplus(raw_scale) + SCALE_EPSILON
      smallest = min(smallest, float(tf.reduce_min(scale)))
      h = tf.gather(tf.concat([x0, x1 * scale + shift], axis=-1), permutation, axis=-1)
    return smallest

  def inverse(self, y):
    """g^-1: embeddings [B, d] -> inputs [B, H, W, C], computed (never read from a cache)."""
    y = tf.identity(tf.convert_to_tensor(y, tf.float32))
    return tf.reshape(self._bijector.inverse(y), (-1,) + self.event_shape)


def random_permutations(num, dim, seed):
  """`num` permutations of range(dim), drawn with numpy from `seed` (None: numpy's global
  generator, which keras.utils.set_random_seed seeds)."""
  if seed is None:
    return [np.random.permutation(dim) for _ in range(num)]
  rng = np.random.default_rng(seed)
  return [rng.permutation(dim) for _ in range(num)]


@registry.register("encoder", "realnvp")
@gin.configurable("realnvp")
def realnvp(input_shape, num_couplings=30, hidden_units=(512, 512), coupling="shift",
            init_stddev=1e-4, permutation_seed=None, name="realnvp"):
  """The RealNVP encoder of Section 3.1 (see the module docstring); output dimension = input's.

  Args:
    input_shape: shape of one half image, e.g. (14, 28, 1).
    num_couplings: number of coupling layers (the paper: 30).
    hidden_units: hidden widths of each coupling's MLP (the paper: [512, 512]).
    coupling: 'shift' (E1) or 'shift_and_scale' (softplus scale, E2).
    init_stddev: truncated-normal stddev of the coupling MLPs' kernels (the paper: 1e-4).
    permutation_seed: None draws the fixed permutations from numpy's global generator, which
      the training functions seed from the run's seed (keras.utils.set_random_seed) just before
      building g1 and then g2: a function of the run's seed, different for g1 and g2, the same
      when a run is resumed. An integer fixes them whatever the run's seed (g1 and g2 then share
      them).
    name: the Keras model's name.
  """
  check_choice("realnvp.coupling", coupling, COUPLINGS)
  if not isinstance(num_couplings, int) or num_couplings < 1:
    raise ConfigError(f"realnvp.num_couplings={num_couplings!r} is not valid; it must be an "
                      "integer >= 1")
  dim = math.prod(input_shape)
  if dim < 2:
    raise ConfigError(f"realnvp needs inputs of at least 2 values, got shape {input_shape}")
  permutations = random_permutations(num_couplings, dim, permutation_seed)
  model = RealNVPEncoder(input_shape, permutations, tuple(hidden_units), coupling, init_stddev,
                         name=name)
  model(tf.zeros((1,) + tuple(input_shape)))
  return model
