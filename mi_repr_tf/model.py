"""The two-view MI model: encoders g1, g2, a critic f and an MI estimator (Section 2).

For a batch of K pairs (x_top_i, x_bottom_i) the critic scores every pair,
S[i, j] = f(g1(x_top_i), g2(x_bottom_j)), and the estimator turns S into a `Bound`: the value
reported as I_EST and the objective trained. `train_step` takes one Adam step on
-objective (or on |I_EST - t| when a target t is set, Section 3.3); `test_step` returns the
bound without updating anything.

Under a `tf.distribute` strategy with R replicas each replica embeds its slice of the global
batch; the embeddings are gathered across replicas (`cross_replica_concat`) so that every
replica scores the same global K x K matrix and computes the same bound as one device would.
Gradients: replica r's loss reaches its own encoder rows only, and the optimizer sums the
replicas' gradients, so the encoders' gradient is the single-device one; every replica
computes the full gradient of the critic (and of any estimator variables), so that part is
divided by R. The update then equals the single-device update on the same global batch.
"""

import keras
import tensorflow as tf

from mi_repr_tf import critics as critics_lib
from mi_repr_tf import encoders as encoders_lib
from mi_repr_tf import estimators as estimators_lib


def cross_replica_concat(x):
  """Concatenates `x` [k, ...] of every replica along axis 0, in replica order: [R * k, ...].

  Outside a multi-replica context it returns `x`. The other replicas' rows are constants
  here (gathered forward only, no collective in the backward pass); this replica's rows
  stay differentiable, so the gradient reaches exactly the embeddings it computed.
  """
  context = tf.distribute.get_replica_context()
  if context is None or context.num_replicas_in_sync == 1:
    return x
  gathered = context.all_gather(tf.stop_gradient(x), axis=0)
  k = tf.shape(x)[0]
  start = tf.cast(context.replica_id_in_sync_group, tf.int32) * k
  return tf.concat([gathered[:start], x, gathered[start + k:]], axis=0)


def num_replicas():
  context = tf.distribute.get_replica_context()
  return 1 if context is None else context.num_replicas_in_sync


class MIModel(keras.Model):
  """g1, g2, critic and estimator, with custom `train_step` and `test_step`."""

  def __init__(self, g1, g2, critic, estimator, target=None, **kwargs):
    super().__init__(**kwargs)
    self.g1 = g1
    self.g2 = g2
    self.critic = critic
    self.estimator = estimator  # a function, or a Layer when it has variables (tracked)
    self.target = target

  def embed(self, x_top, x_bottom, training=False):
    """(z1, z2): the embeddings of the global batch (gathered across replicas)."""
    z1 = cross_replica_concat(self.g1(x_top, training=training))
    z2 = cross_replica_concat(self.g2(x_bottom, training=training))
    return z1, z2

  def call(self, inputs, training=False):
    """inputs = (x_top, x_bottom, ...) -> the [K, K] score matrix."""
    return self.critic(*self.embed(inputs[0], inputs[1], training=training))

  def bound_and_loss(self, x_top, x_bottom, training=False):
    """(Bound, loss) of one batch; a training call may update estimator state."""
    z1, z2 = self.embed(x_top, x_bottom, training=training)
    bound = self.estimator(self.critic(z1, z2), z2, training=training)
    return bound, estimators_lib.loss(bound, self.target)

  @tf.autograph.experimental.do_not_convert  # no tensor-dependent Python control flow
  def train_step(self, data):
    x_top, x_bottom = data[0], data[1]
    with tf.GradientTape() as tape:
      bound, loss = self.bound_and_loss(x_top, x_bottom, training=True)
    variables = self.trainable_variables
    gradients = tape.gradient(loss, variables)
    replicas = num_replicas()
    if replicas > 1:  # every replica computed the whole critic / estimator gradient
      encoder_variables = {id(v) for v in self.g1.trainable_variables
                           + self.g2.trainable_variables}
      gradients = [g if id(v) in encoder_variables else g / replicas
                   for g, v in zip(gradients, variables)]
    self.optimizer.apply(gradients, variables)
    return {"loss": loss, "bound": bound.value}

  def test_step(self, data):
    bound, loss = self.bound_and_loss(data[0], data[1], training=False)
    return {"loss": loss, "bound": bound.value}


def build_model(encoder, critic, estimator, input_shape, target=None):
  """An MIModel with two separate encoders of kind `encoder`, built for `input_shape`."""
  model = MIModel(
      g1=encoders_lib.build(encoder, input_shape, "g1"),
      g2=encoders_lib.build(encoder, input_shape, "g2"),
      critic=critics_lib.build(critic),
      estimator=estimators_lib.build(estimator),
      target=target)
  dummy = tf.zeros((2,) + tuple(input_shape))
  model((dummy, dummy))
  model.bound_and_loss(dummy, dummy)  # builds an estimator's own variables, if it has any
  return model
