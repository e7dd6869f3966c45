"""Rotation: the batch it builds (against np.rot90), its loss and update against hand computations."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfssl.config import Config
from tfssl.tasks.base import TaskContext
from tfssl.tasks.rotation import Rotation, flatten_rotations
from helpers.stubs import MeanPixelLogits
from helpers.real_training import losses_on_one_real_batch


class StubRotation(Rotation):
  kernel = np.zeros((3, 4), np.float32)

  def make_backbone(self):
    return MeanPixelLogits(self.kernel)


def _config(**kw):
  return Config.make(task="rotation", architecture="resnet50", batch_size=2, **kw)


def _rotated_batch(images):
  """What the `rotate` op gives per image, batched: [B, 4, H, W, C] and labels [B, 4]."""
  stacked = np.stack([[np.rot90(im, k) for k in range(4)] for im in images])
  return {"image": tf.constant(stacked, tf.float32), "label": tf.tile([[0, 1, 2, 3]], [len(images), 1])}


def test_flatten_keeps_each_images_rotations_adjacent():
  images = np.arange(2 * 4 * 4 * 1, dtype=np.float32).reshape(2, 4, 4, 1)
  batch = _rotated_batch(images)
  flat, labels = flatten_rotations(batch["image"], batch["label"])
  assert flat.shape == (8, 4, 4, 1)
  np.testing.assert_array_equal(labels, [0, 1, 2, 3, 0, 1, 2, 3])
  for b in range(2):
    for k in range(4):
      np.testing.assert_array_equal(flat[4 * b + k], np.rot90(images[b], k))


def test_rotate_op_gives_counter_clockwise_rotations():
  from tfssl.data.preprocess import get_preprocess_fn
  image = np.random.RandomState(0).randint(0, 256, size=(5, 5, 3)).astype(np.uint8)
  fn = get_preprocess_fn("rotate", _config(), is_training=True)
  out = fn({"image": tf.constant(image), "label": tf.constant(7)})
  np.testing.assert_array_equal(out["label"], [0, 1, 2, 3])
  flat, labels = flatten_rotations(out["image"][None], out["label"][None])
  for k in range(4):
    np.testing.assert_array_equal(flat[k], np.rot90(image, k))
  np.testing.assert_array_equal(labels, [0, 1, 2, 3])


def _softmax(x):
  e = np.exp(x - x.max(axis=1, keepdims=True))
  return e / e.sum(axis=1, keepdims=True)


def test_loss_accuracy_and_sgd_update_by_hand():
  rng = np.random.RandomState(1)
  kernel = rng.normal(size=(3, 4)).astype(np.float32)
  images = rng.uniform(size=(2, 3, 3, 3)).astype(np.float32)
  batch = _rotated_batch(images)
  StubRotation.kernel = kernel
  wd, lr = 0.01, 0.5
  task = StubRotation(_config(weight_decay=wd), TaskContext(num_classes=10))
  task.compile(optimizer=keras.optimizers.SGD(lr))
  task(batch, training=False)

  x = np.stack([np.rot90(im, k)[0].mean(axis=0) for im in images for k in range(4)])
  labels = np.tile(np.arange(4), 2)
  probs = _softmax(x @ kernel)
  ce = -np.mean(np.log(probs[np.arange(8), labels]))
  accuracy = np.mean(np.argmax(x @ kernel, axis=1) == labels)

  task.test_step(batch)
  assert np.isclose(task.loss_tracker.result(), ce, rtol=1e-5)
  assert np.isclose(task.accuracy.result(), accuracy)
  assert [m.name for m in task.metrics] == ["loss", "accuracy"]

  for m in task.metrics:
    m.reset_state()
  task.train_step(batch)
  # Logged training loss includes the original's L2: wd * sum(w^2) / 2.
  assert np.isclose(task.loss_tracker.result(), ce + wd * np.sum(kernel ** 2) / 2, rtol=1e-5)
  onehot = np.eye(4)[labels]
  grad = x.T @ (probs - onehot) / 8 + wd * kernel
  np.testing.assert_allclose(task.backbone.kernel.numpy(), kernel - lr * grad, rtol=1e-4, atol=1e-6)


def test_training_steps_lower_the_loss_on_a_separable_case():
  # The top rows of the four rotations have channel means (1, .5), (.5, 0), (0, .5), (.5, 1):
  # the vertices of a square, so a bias-free linear map can tell them apart.
  image = np.zeros((4, 4, 3), np.float32)
  image[:2, :, 0] = 1.0
  image[:, :2, 1] = 1.0
  batch = _rotated_batch([image])
  StubRotation.kernel = np.zeros((3, 4), np.float32)
  task = StubRotation(_config(weight_decay=0.0), TaskContext(num_classes=10))
  task.compile(optimizer=keras.optimizers.SGD(0.5))
  task(batch)
  losses = []
  for _ in range(3):
    task.loss_tracker.reset_state()
    task.train_step(batch)
    losses.append(float(task.loss_tracker.result()))
  assert losses[0] > losses[1] > losses[2]
  assert np.isclose(losses[0], np.log(4.0), rtol=1e-5)  # zero kernel: uniform over 4 classes


@pytest.mark.slow
def test_training_on_fashion_mnist_lowers_the_loss(fashion_mnist_dir):
  config = Config.make(task="rotation", architecture="cifar_resnet18", filters_factor=1,
                       dataset="fashion_mnist", dataset_dir=fashion_mnist_dir, batch_size=16,
                       preprocessing="resize,-1_to_1,rotate", resize_size="16", lr=0.05, random_seed=0)
  batch, losses = losses_on_one_real_batch(Rotation, config, 12)
  assert batch["image"].shape == (16, 4, 16, 16, 3)
  assert np.mean(losses[-3:]) < 0.7 * losses[0], losses
