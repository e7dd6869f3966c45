"""Stand-in backbones and heads for the pretext tasks' hand computations: each output is a known
function of a few pixels and one or two variables, so a test can write the loss and its update
by hand."""

import keras
import tensorflow as tf


class PixelEmbedding(keras.Model):
  """An embedding of scale * the first two channels of pixel (0, 0): the tile or crop id the
  test wrote there. Its only variable is `scale`."""

  def __init__(self):
    super().__init__()
    self.scale = self.add_weight(shape=(), initializer="ones", name="scale")

  def call(self, images, training=False):
    embeddings = self.scale * images[:, 0, 0, :2]
    return embeddings, {"logits": embeddings}


class FixedLinear(keras.Model):
  """A head: logits = rows @ kernel, the kernel set by the test."""

  def __init__(self, kernel):
    super().__init__()
    self.kernel = self.add_weight(shape=kernel.shape,
                                  initializer=keras.initializers.Constant(kernel), name="kernel")

  def call(self, rows, training=False):
    return tf.matmul(rows, self.kernel)


class MeanPixelLogits(keras.Model):
  """logits = (channel means of the top pixel row) @ kernel, a [3, 4] variable.

  The top row, unlike the whole image's mean, changes with the rotation.
  """

  def __init__(self, kernel):
    super().__init__()
    self.kernel = self.add_weight(shape=(3, 4), initializer=keras.initializers.Constant(kernel),
                                  name="kernel")

  def call(self, images, training=False):
    logits = tf.matmul(tf.reduce_mean(images[:, 0], axis=1), self.kernel)
    return logits, {"logits": logits}
