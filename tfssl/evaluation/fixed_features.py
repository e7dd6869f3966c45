"""One protocol for a representation held as arrays: a linear classifier and the weighted kNN on
fixed features, the same for raw pixels, a random network and a pretrained one (make demo,
benchmarks/accuracy.py's raw-pixel row).

The linear classifier is softmax regression trained close to convergence: Keras's `fit` pays a few
milliseconds of overhead per step, so 100 epochs over 54,000 examples took minutes where the
arithmetic takes seconds; here the epochs run inside one compiled loop (tf.while_loop over
shuffled minibatches). Its one choice, the feature scaling (as they are, or standardised per
dimension with the training set's mean and deviation), is made on a held-out tenth of the
training features, never on the test set; then the classifier is trained on all of them.
"""

import contextlib
import logging

import numpy as np
import tensorflow as tf

from tfssl.evaluation import knn

EPOCHS = 100
BATCH = 1024
LR = 1e-2  # Adam, cosine-decayed to 0 over the epochs
HELD_OUT = 0.1
SEED = 0
PROTOCOL = ("softmax regression, %d epochs of Adam %g (batch %d, cosine), on the features as they are "
            "or standardised, whichever does better on a held-out tenth of the training set"
            % (EPOCHS, LR, BATCH))


def softmax_regression(x_train, y_train, num_classes, epochs=EPOCHS, batch=BATCH, lr=LR, seed=SEED):
  """(kernel, bias) of softmax regression on [N, D] features, minibatch Adam, one compiled loop."""
  x = tf.constant(np.asarray(x_train, np.float32))
  y = tf.constant(np.asarray(y_train, np.int32))
  n, dim = int(x.shape[0]), int(x.shape[1])
  steps_per_epoch = max(1, n // batch)
  total = epochs * steps_per_epoch
  kernel = tf.Variable(tf.zeros([dim, num_classes]))
  bias = tf.Variable(tf.zeros([num_classes]))
  optimizer = tf.keras.optimizers.Adam(tf.keras.optimizers.schedules.CosineDecay(lr, total))
  optimizer.build([kernel, bias])

  @tf.function
  def train():
    def epoch(e):
      order = tf.argsort(tf.random.stateless_uniform([n], seed=[seed, e]))

      def step(i):
        index = order[i * batch:(i + 1) * batch]
        with tf.GradientTape() as tape:
          logits = tf.matmul(tf.gather(x, index), kernel) + bias
          loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
              tf.gather(y, index), logits))
        optimizer.apply_gradients(zip(tape.gradient(loss, [kernel, bias]), [kernel, bias]))
        return (i + 1,)

      tf.while_loop(lambda i: i < steps_per_epoch, step, (0,))
      return (e + 1,)

    tf.while_loop(lambda e: e < epochs, epoch, (0,))

  with _retracing_expected():
    train()
  return kernel.numpy(), bias.numpy()


class _DropRetracingWarning(logging.Filter):
  def filter(self, record):
    return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def _retracing_expected():
  """Each call compiles its own loop over its own variables, so from the fifth call on (the demo
  makes six) TF warns that the function "retraced"; that is the design here, not a fault."""
  drop = _DropRetracingWarning()
  logger = logging.getLogger("tensorflow")
  logger.addFilter(drop)
  try:
    yield
  finally:
    logger.removeFilter(drop)


def linear_accuracy(x_train, y_train, x_test, y_test, num_classes, **kwargs):
  """Test top-1 of softmax_regression trained on the training features."""
  kernel, bias = softmax_regression(x_train, y_train, num_classes, **kwargs)
  predictions = np.argmax(np.asarray(x_test, np.float32) @ kernel + bias, axis=1)
  return float(np.mean(predictions == np.asarray(y_test)))


def _standardise(x_train, *others):
  mean, std = x_train.mean(0), x_train.std(0) + 1e-6
  return [(x - mean) / std for x in (x_train,) + others]


SCALINGS = {"as is": lambda *xs: list(xs), "standardised": _standardise}


def evaluate(x_train, y_train, x_test, y_test, num_classes, k=200, temperature=0.1):
  """{"linear_top1", "knn_top1", "scaling"} of fixed features: the linear classifier (PROTOCOL)
  with its scaling chosen on held-out training features, and the weighted kNN (cosine, k, votes
  exp(sim / temperature)) on the features as they are, the training set as the bank."""
  x_train, x_test = np.asarray(x_train, np.float32), np.asarray(x_test, np.float32)
  y_train = np.asarray(y_train)
  cut = int(len(x_train) * (1 - HELD_OUT))
  held_out = {}
  for name, scale in SCALINGS.items():
    fit, held = scale(x_train[:cut], x_train[cut:])
    held_out[name] = linear_accuracy(fit, y_train[:cut], held, y_train[cut:], num_classes)
  scaling = max(held_out, key=held_out.get)
  train, test = SCALINGS[scaling](x_train, x_test)
  linear = linear_accuracy(train, y_train, test, y_test, num_classes)
  neighbours = knn.weighted_knn(x_train, y_train, x_test, y_test, num_classes, k=k,
                                temperature=temperature)
  return {"linear_top1": linear, "knn_top1": float(neighbours["top1"]), "scaling": scaling}
