"""Jigsaw: tiles, permuted rows and labels it builds, and its loss against hand computations."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfssl.config import Config
from tfssl.tasks import permutations
from tfssl.tasks.base import TaskContext
from tfssl.tasks.jigsaw import Jigsaw
from tfssl.tasks.patch_common import HEAD_WEIGHT_DECAY
from helpers.stubs import FixedLinear, PixelEmbedding
from helpers.real_training import losses_on_one_real_batch


def _stub_jigsaw(config, head_kernel=None):
  class StubJigsaw(Jigsaw):
    def make_backbone(self):
      return PixelEmbedding()

    def make_head(self, num_classes):
      kernel = head_kernel if head_kernel is not None else np.zeros((18, num_classes), np.float32)
      return FixedLinear(kernel)

  task = StubJigsaw(config, TaskContext(num_classes=10))
  task.compile(optimizer=keras.optimizers.SGD(0.1))
  return task


def _config(**kw):
  kw.setdefault("weight_decay", 0.0)
  return Config.make(task="jigsaw", architecture="resnet50", batch_size=2, embed_dim=2, **kw)


def _tiles(batch_size):
  """[B, 9, 2, 2, 3] tiles whose pixel (0, 0) holds (image index, tile index)."""
  tiles = np.zeros((batch_size, 9, 2, 2, 3), np.float32)
  tiles[..., 0] = np.arange(batch_size)[:, None, None, None]
  tiles[..., 1] = np.arange(9)[None, :, None, None]
  return tiles


def _perm_file(tmp_path, rows):
  path = tmp_path / "perms.txt"
  path.write_text("\n".join(" ".join(str(x) for x in r) for r in rows) + "\n")
  return str(path)


def test_crop_patches_tiles_are_the_grid_cells_row_major():
  from tfssl.data.preprocess import get_preprocess_fn
  image = np.random.RandomState(0).randint(0, 256, size=(6, 6, 3)).astype(np.uint8)
  fn = get_preprocess_fn("crop_patches", _config(splits_per_side=3, patch_jitter=0), is_training=False)
  tiles = fn({"image": tf.constant(image), "label": tf.constant(0)})["image"].numpy()
  assert tiles.shape == (9, 2, 2, 3)
  for t in range(9):
    r, c = divmod(t, 3)
    np.testing.assert_array_equal(tiles[t], image[2 * r:2 * r + 2, 2 * c:2 * c + 2])


def test_eval_rows_follow_every_permutation_in_order():
  task = _stub_jigsaw(_config())
  embeddings = task.embed_tiles(tf.constant(_tiles(2)), training=False)
  rows, labels = task.combine(embeddings, training=False)
  perms = permutations.load()
  assert rows.shape == (2 * 100, 18)
  np.testing.assert_array_equal(labels, np.tile(np.arange(100), 2))
  rows = rows.numpy().reshape(2, 100, 9, 2)
  # Slot k of image b's row for permutation m holds tile perms[m, k] of image b.
  np.testing.assert_array_equal(rows[..., 1], np.broadcast_to(perms, (2, 100, 9)))
  np.testing.assert_array_equal(rows[..., 0], np.broadcast_to(np.arange(2)[:, None, None], (2, 100, 9)))


def test_training_draws_one_subset_per_batch_shared_by_all_images():
  task = _stub_jigsaw(_config(perm_subset_size=8))
  embeddings = task.embed_tiles(tf.constant(_tiles(3)), training=True)
  perms = permutations.load()
  drawn = []
  for _ in range(3):
    rows, labels = task.combine(embeddings, training=True)
    labels = labels.numpy().reshape(3, 8)
    assert (labels == labels[0]).all(), "images of a batch must share the permutation subset"
    ids = labels[0]
    assert len(set(ids.tolist())) == 8 and ids.min() >= 0 and ids.max() < 100
    rows = rows.numpy().reshape(3, 8, 9, 2)
    np.testing.assert_array_equal(rows[..., 1], np.broadcast_to(perms[ids], (3, 8, 9)))
    drawn.append(tuple(ids))
  assert len(set(drawn)) > 1  # a fresh subset per batch (same draw thrice: chance ~1e-28)


def test_loss_by_hand_with_a_small_permutation_set(tmp_path):
  rows_of_file = [[1, 0, 2, 3, 4, 5, 6, 7, 8], [8, 7, 6, 5, 4, 3, 2, 1, 0], [2, 0, 1, 5, 3, 4, 8, 6, 7]]
  kernel = np.random.RandomState(2).normal(size=(18, 3)).astype(np.float32) * 0.1
  wd = 0.01
  config = _config(permutations_file=_perm_file(tmp_path, rows_of_file), perm_subset_size=3,
                   weight_decay=wd)
  task = _stub_jigsaw(config, kernel)
  batch = {"image": tf.constant(_tiles(2)), "label": tf.zeros([2], tf.int32)}
  task(batch)

  perms = np.array(rows_of_file)
  x = np.stack([np.concatenate([[b, perms[m, k]] for k in range(9)]) for b in range(2) for m in range(3)])
  labels = np.tile(np.arange(3), 2)
  logits = x @ kernel
  logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
  ce = -np.mean(logp[np.arange(6), labels])
  accuracy = np.mean(np.argmax(logits, axis=1) == labels)

  task.test_step(batch)
  assert np.isclose(task.loss_tracker.result(), ce, rtol=1e-5)
  assert np.isclose(task.accuracy.result(), accuracy)
  assert [m.name for m in task.metrics] == ["loss", "accuracy"]

  task.loss_tracker.reset_state()
  # All 3 permutations are drawn (in some order): the mean CE is the same; the decay is the
  # backbone's at --weight_decay plus the head's at the original's fixed 5e-4.
  task.train_step(batch)
  decay = wd * 1.0 / 2 + HEAD_WEIGHT_DECAY * np.sum(kernel ** 2) / 2
  assert np.isclose(task.loss_tracker.result(), ce + decay, rtol=1e-5)


def test_permutations_file_must_match_tiles_and_subset(tmp_path):
  three_tiles = _perm_file(tmp_path, [[0, 1, 2], [2, 1, 0]])
  with pytest.raises(ValueError, match="3 tiles per permutation"):
    _stub_jigsaw(_config(permutations_file=three_tiles))
  with pytest.raises(ValueError, match="perm_subset_size=101"):
    _stub_jigsaw(_config(perm_subset_size=101))
  with pytest.raises(ValueError, match="does not exist"):
    _stub_jigsaw(_config(permutations_file=str(tmp_path / "none.npy")))


def test_original_binary_permutations_file_is_used(tmp_path):
  path = tmp_path / "perm.bin"
  rows = np.array([[8, 7, 6, 9, 5, 4, 3, 2, 1], [2, 1, 3, 4, 5, 6, 7, 8, 9]])
  path.write_bytes(np.array([2, 9], "<i4").tobytes() + rows.astype("<i4").tobytes())
  task = _stub_jigsaw(_config(permutations_file=str(path), perm_subset_size=2))
  embeddings = task.embed_tiles(tf.constant(_tiles(1)), training=False)
  rows_out, labels = task.combine(embeddings, training=False)
  np.testing.assert_array_equal(rows_out.numpy().reshape(2, 9, 2)[..., 1], rows - 1)
  np.testing.assert_array_equal(labels, [0, 1])


def _fashion_mnist_config(data_dir, **kw):
  """9 tiles of 9x9: items resized to 36, a 33 crop, 11x11 cells jittered by 2."""
  values = dict(task="jigsaw", architecture="cifar_resnet18", filters_factor=1, dataset="fashion_mnist",
                dataset_dir=data_dir, batch_size=8, preprocessing="resize,crop,crop_patches,standardization",
                resize_size="36", crop_size="33", splits_per_side=3, patch_jitter=2, embed_dim=32,
                lr=0.05, random_seed=0)
  values.update(kw)
  return Config.make(**values)


@pytest.mark.slow
def test_training_on_fashion_mnist_lowers_the_loss(fashion_mnist_dir):
  # All 100 permutations every step: on one fixed batch the loss then tracks learning, not which
  # random 8 classes were drawn (the fashion_mnist config's warm-up handles that in real training).
  config = _fashion_mnist_config(fashion_mnist_dir, perm_subset_size=100)
  batch, losses = losses_on_one_real_batch(Jigsaw, config, 15)
  assert batch["image"].shape == (8, 9, 9, 9, 3)
  assert np.mean(losses[-3:]) < 0.7 * losses[0], losses
