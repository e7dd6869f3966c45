"""Exemplar: the crops and labels it builds, its triplet loss and retrieval accuracy by hand."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfssl.config import Config
from tfssl.tasks.base import TaskContext
from tfssl.tasks.exemplar import Exemplar, exemplar_labels, nearest_image_scores
from tfssl.tasks.views import merge_views as flatten_crops
from helpers.stubs import PixelEmbedding
from helpers.real_training import losses_on_one_real_batch


class StubExemplar(Exemplar):

  def make_backbone(self):
    return PixelEmbedding()


def _config(**kw):
  kw.setdefault("weight_decay", 0.0)
  return Config.make(task="exemplar", architecture="resnet50", batch_size=2, margin=0.5, **kw)


def _batch(crop_embeddings):
  """[B, N, 2] wanted embeddings -> images [B, N, 2, 2, 3] whose pixel (0, 0) carries them."""
  e = np.asarray(crop_embeddings, np.float32)
  images = np.zeros(e.shape[:2] + (2, 2, 3), np.float32)
  images[:, :, 0, 0, :2] = e
  return {"image": tf.constant(images), "label": tf.zeros([e.shape[0]], tf.int32)}


# Unit directions: image 0 at 0 and ~36.9 degrees, image 1 at 90 and ~126.9 degrees. With squared
# distances 2 - 2cos: d(a0,a1) = d(b0,b1) = 0.4, d(a0,b0) = d(a1,b1) = 2, d(a0,b1) = 3.2,
# d(a1,b0) = 0.8. Semi-hard negatives (smallest d(a,n) > d(a,p) = 0.4), hinge margin + d(a,p) - d(a,n):
# (a0,a1): n at 2 -> 0; (a1,a0): n=b0 at 0.8 -> 0.1; (b0,b1): n=a1 at 0.8 -> 0.1; (b1,b0): n at 2 -> 0.
# Mean over the 4 positive pairs: 0.05. Lengths 3, 2, 0.5, 5 vanish under per-embedding normalisation.
UNIT = np.array([[[1, 0], [0.8, 0.6]], [[0, 1], [-0.6, 0.8]]], np.float32)
LENGTHS = np.array([[3.0, 2.0], [0.5, 5.0]], np.float32)[..., None]


def test_labels_repeat_the_image_index():
  np.testing.assert_array_equal(exemplar_labels(3, 2), [0, 0, 1, 1, 2, 2])
  np.testing.assert_array_equal(exemplar_labels(2, 3, offset=4), [4, 4, 4, 5, 5, 5])


def test_flatten_keeps_each_images_crops_adjacent():
  images = np.arange(2 * 3 * 1 * 1 * 1, dtype=np.float32).reshape(2, 3, 1, 1, 1)
  np.testing.assert_array_equal(flatten_crops(images)[:, 0, 0, 0], [0, 1, 2, 3, 4, 5])


def test_triplet_loss_by_hand_with_per_embedding_normalisation():
  task = StubExemplar(_config(), TaskContext(num_classes=10))
  task.compile(optimizer=keras.optimizers.SGD(0.1))
  batch = _batch(UNIT * LENGTHS)
  task(batch)
  task.test_step(batch)
  assert np.isclose(task.loss_tracker.result(), 0.05, atol=1e-5)


def test_norm_axis_zero_normalises_each_dimension_across_the_batch():
  from tfssl.losses import triplet_semihard_loss
  raw = (UNIT * LENGTHS).reshape(4, 2)
  across_batch = raw / np.linalg.norm(raw, axis=0, keepdims=True)
  expected = float(triplet_semihard_loss(tf.constant([0, 0, 1, 1]), across_batch, margin=0.5))
  task = StubExemplar(_config(exemplar_norm_axis=0), TaskContext(num_classes=10))
  task.compile(optimizer=keras.optimizers.SGD(0.1))
  batch = _batch(UNIT * LENGTHS)
  task(batch)
  task.test_step(batch)
  assert np.isclose(task.loss_tracker.result(), expected, atol=1e-6)
  assert not np.isclose(expected, 0.05, atol=1e-3)  # the two choices differ on this batch


def test_train_step_adds_weight_decay_and_updates():
  wd = 0.1
  task = StubExemplar(_config(weight_decay=wd), TaskContext(num_classes=10))
  task.compile(optimizer=keras.optimizers.SGD(0.5))
  batch = _batch(UNIT * LENGTHS)
  task(batch)
  task.train_step(batch)
  # The normalised loss ignores the scale, so only the decay (wd * 1^2 / 2) moves it: 1 - 0.5 * wd.
  assert np.isclose(task.loss_tracker.result(), 0.05 + wd / 2, atol=1e-5)
  assert np.isclose(task.backbone.scale.numpy(), 1.0 - 0.5 * wd, atol=1e-6)


def test_unknown_norm_axis_is_an_error():
  with pytest.raises(ValueError, match="exemplar_norm_axis"):
    StubExemplar(_config(exemplar_norm_axis=2), TaskContext(num_classes=10))


def test_retrieval_accuracy_by_hand():
  # Crop a1 lies nearer to image 1's crop b0 than to a0: only a1 is retrieved wrongly.
  e = np.array([[1, 0], [0.3, 1], [0, 1], [-0.2, 1]], np.float32)
  scores = nearest_image_scores(e, 2).numpy()
  assert scores.shape == (4, 2)
  np.testing.assert_array_equal(np.argmax(scores, axis=1), [0, 1, 1, 1])
  # Each crop's own similarity (1) is excluded: a0's best match in image 0 is a1, cos = 0.3/|(.3,1)|.
  assert np.isclose(scores[0, 0], 0.3 / np.hypot(0.3, 1.0), atol=1e-6)
  task = StubExemplar(_config(), TaskContext(num_classes=10))
  task.compile(optimizer=keras.optimizers.SGD(0.1))
  batch = _batch(e.reshape(2, 2, 2))
  task(batch)
  task.test_step(batch)
  assert np.isclose(task.accuracy.result(), 0.75)
  assert [m.name for m in task.metrics] == ["loss", "accuracy"]


def test_crops_share_one_grayscale_decision():
  from tfssl.data.preprocess import get_preprocess_fn
  config = _config(grayscale_probability=0.5, resize_size="8", num_of_inception_patches=4)
  fn = get_preprocess_fn("to_gray,crop_inception_preprocess_patches,standardization", config,
                         is_training=True)
  rng = np.random.RandomState(0)
  image = tf.constant(rng.randint(0, 256, size=(12, 12, 3)).astype(np.uint8))
  decisions = []
  for seed in range(12):
    crops = fn({"image": image, "label": tf.constant(0)}, seed=tf.constant([seed, 1]))["image"].numpy()
    assert crops.shape == (4, 8, 8, 3)
    gray = [np.allclose(c[..., 0], c[..., 1], atol=1e-5) and np.allclose(c[..., 0], c[..., 2], atol=1e-5)
            for c in crops]
    assert len(set(gray)) == 1, "crops of one image disagree on grayscale: %s" % gray
    decisions.append(gray[0])
    # Per-crop standardization: each crop has mean 0 and unit variance.
    np.testing.assert_allclose(crops.mean(axis=(1, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(crops.std(axis=(1, 2, 3)), 1, atol=1e-2)
  assert set(decisions) == {True, False}


@pytest.mark.slow
def test_training_on_fashion_mnist_lowers_the_loss(fashion_mnist_dir):
  config = Config.make(task="exemplar", architecture="cifar_resnet18", filters_factor=1,
                       dataset="fashion_mnist", dataset_dir=fashion_mnist_dir, batch_size=8,
                       preprocessing="crop_inception_preprocess_patches,standardization",
                       resize_size="16", num_of_inception_patches=4, embed_dim=32, margin=0.5,
                       lr=0.05, random_seed=0)
  batch, losses = losses_on_one_real_batch(Exemplar, config, 12)
  assert batch["image"].shape == (8, 4, 16, 16, 3)
  assert np.mean(losses[-3:]) < 0.7 * losses[0], losses
