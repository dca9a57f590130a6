"""The two-view MI model: encoders g1, g2, a critic f and an MI estimator (Section 2).

For a batch of K pairs (x_top_i, x_bottom_i) the critic scores every pair,
S[i, j] = f(g1(x_top_i), g2(x_bottom_j)), and the estimator turns S into a bound I_EST.
`train_step` takes one Adam step on -I_EST (or on |I_EST - t| when a target t is set,
Section 3.3); `test_step` returns the bound without updating anything.
"""

import keras
import tensorflow as tf

from mi_repr_tf import critics as critics_lib
from mi_repr_tf import encoders as encoders_lib
from mi_repr_tf import estimators as estimators_lib


class MIModel(keras.Model):
  """g1, g2, critic and estimator, with custom `train_step` and `test_step`."""

  def __init__(self, g1, g2, critic, estimator, target=None, **kwargs):
    super().__init__(**kwargs)
    self.g1 = g1
    self.g2 = g2
    self.critic = critic
    self.estimator = estimator
    self.target = target

  def call(self, inputs, training=False):
    """inputs = (x_top, x_bottom, ...) -> the [K, K] score matrix."""
    x_top, x_bottom = inputs[0], inputs[1]
    return self.critic(self.g1(x_top, training=training), self.g2(x_bottom, training=training))

  def bound_and_loss(self, x_top, x_bottom, training=False):
    bound = self.estimator(self((x_top, x_bottom), training=training))
    return bound, estimators_lib.target_loss(bound, self.target)

  def train_step(self, data):
    x_top, x_bottom = data[0], data[1]
    with tf.GradientTape() as tape:
      bound, loss = self.bound_and_loss(x_top, x_bottom, training=True)
    variables = self.trainable_variables
    self.optimizer.apply(tape.gradient(loss, variables), variables)
    return {"loss": loss, "bound": bound}

  def test_step(self, data):
    bound, loss = self.bound_and_loss(data[0], data[1], training=False)
    return {"loss": loss, "bound": bound}


def build_model(encoder, critic, estimator, input_shape, target=None):
  """An MIModel with two separate encoders of kind `encoder`, built for `input_shape`."""
  model = MIModel(
      g1=encoders_lib.get_encoder(encoder, input_shape, "g1"),
      g2=encoders_lib.get_encoder(encoder, input_shape, "g2"),
      critic=critics_lib.get_critic(critic),
      estimator=estimators_lib.get_estimator(estimator),
      target=target)
  dummy = tf.zeros((2,) + tuple(input_shape))
  model((dummy, dummy))
  return model
