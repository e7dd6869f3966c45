"""Relative patch location: the (neighbour, centre) rows and labels it builds, its loss by hand."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfssl.config import Config
from tfssl.tasks.base import TaskContext
from tfssl.tasks.patch_common import HEAD_WEIGHT_DECAY
from tfssl.tasks.relative_patch_location import PAIRS, RelativePatchLocation
from helpers.stubs import FixedLinear, PixelEmbedding
from helpers.real_training import losses_on_one_real_batch


def _stub_rpl(config, head_kernel):
  class StubRPL(RelativePatchLocation):
    def make_backbone(self):
      return PixelEmbedding()

    def make_head(self, num_classes):
      assert num_classes == 8
      return FixedLinear(head_kernel)

  task = StubRPL(config, TaskContext(num_classes=10))
  task.compile(optimizer=keras.optimizers.SGD(0.1))
  return task


def _config(**kw):
  kw.setdefault("weight_decay", 0.0)
  return Config.make(task="relative_patch_location", architecture="resnet50", batch_size=2,
                     embed_dim=2, **kw)


def _batch(batch_size):
  """Tiles [B, 9, 2, 2, 3] whose pixel (0, 0) holds (image index, tile index)."""
  tiles = np.zeros((batch_size, 9, 2, 2, 3), np.float32)
  tiles[..., 0] = np.arange(batch_size)[:, None, None, None]
  tiles[..., 1] = np.arange(9)[None, :, None, None]
  return {"image": tf.constant(tiles), "label": tf.zeros([batch_size], tf.int32)}


def test_pairs_are_each_neighbour_with_the_centre_row_major():
  assert PAIRS.tolist() == [[0, 4], [1, 4], [2, 4], [3, 4], [5, 4], [6, 4], [7, 4], [8, 4]]


def test_rows_are_neighbour_then_centre_and_labels_tile_range_8():
  task = _stub_rpl(_config(), np.zeros((4, 8), np.float32))
  batch = _batch(3)
  for training in (True, False):
    rows, labels = task.combine(task.embed_tiles(batch["image"], training=training), training)
    np.testing.assert_array_equal(labels, np.tile(np.arange(8), 3))
    rows = rows.numpy().reshape(3, 8, 4)
    neighbours = [0, 1, 2, 3, 5, 6, 7, 8]
    for b in range(3):
      for k, n in enumerate(neighbours):
        np.testing.assert_array_equal(rows[b, k], [b, n, b, 4])


def test_loss_by_hand():
  kernel = np.random.RandomState(3).normal(size=(4, 8)).astype(np.float32) * 0.3
  wd = 0.02
  task = _stub_rpl(_config(weight_decay=wd), kernel)
  batch = _batch(2)
  task(batch)
  x = np.array([[b, n, b, 4] for b in range(2) for n in (0, 1, 2, 3, 5, 6, 7, 8)], np.float32)
  labels = np.tile(np.arange(8), 2)
  logits = x @ kernel
  logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
  ce = -np.mean(logp[np.arange(16), labels])

  task.test_step(batch)
  assert np.isclose(task.loss_tracker.result(), ce, rtol=1e-5)
  assert np.isclose(task.accuracy.result(), np.mean(np.argmax(logits, axis=1) == labels))
  assert [m.name for m in task.metrics] == ["loss", "accuracy"]

  task.loss_tracker.reset_state()
  task.train_step(batch)
  decay = wd / 2 + HEAD_WEIGHT_DECAY * np.sum(kernel ** 2) / 2
  assert np.isclose(task.loss_tracker.result(), ce + decay, rtol=1e-5)


def test_needs_a_three_by_three_grid():
  with pytest.raises(ValueError, match="splits_per_side=2"):
    _stub_rpl(_config(splits_per_side=2), np.zeros((4, 8), np.float32))


def _fashion_mnist_config(data_dir, **kw):
  """9 tiles of 9x9: items resized to 36, a 33 crop, 11x11 cells jittered by 2."""
  values = dict(task="relative_patch_location", architecture="cifar_resnet18", filters_factor=1,
                dataset="fashion_mnist", dataset_dir=data_dir, batch_size=8,
                preprocessing="resize,crop,crop_patches,standardization", resize_size="36",
                crop_size="33", splits_per_side=3, patch_jitter=2, embed_dim=32, lr=0.01,
                random_seed=0)
  values.update(kw)
  return Config.make(**values)


@pytest.mark.slow
def test_training_on_fashion_mnist_lowers_the_loss(fashion_mnist_dir):
  config = _fashion_mnist_config(fashion_mnist_dir)
  batch, losses = losses_on_one_real_batch(RelativePatchLocation, config, 12)
  assert batch["image"].shape == (8, 9, 9, 9, 3)
  assert np.mean(losses[-3:]) < 0.7 * losses[0], losses


@pytest.mark.slow
def test_patch_export_embeds_single_tiles_and_linear_eval_runs_on_it(tmp_path, fashion_mnist_dir):
  from tfssl.models.export import load_export
  from tfssl.trainer import Trainer
  config = _fashion_mnist_config(fashion_mnist_dir, workdir=str(tmp_path / "rpl"), train_steps=3,
                                 serving_input_shape="None,9,9,3", save_checkpoints_secs=3600,
                                 log_every_steps=3)
  trainer = Trainer(config)
  logs = trainer.train()
  assert {"loss", "accuracy"} <= set(logs)
  export_dir = trainer.export(trainer.step)

  export = load_export(export_dir)
  assert export.input_shape == [None, 9, 9, 3]
  tile = tf.random.normal([1, 9, 9, 3])
  assert export(tile).shape == (1, 32)  # the tile's embed_dim embedding, no pair head
  rep = export.representation(tile)
  assert rep["pre_logits"].shape == (1, trainer.task.backbone.feature_dim) and rep["logits"].shape == (1, 32)
  # The export is the backbone alone: it gives what the trained task's backbone gives.
  np.testing.assert_allclose(export(tile), trainer.task.backbone(tile, training=False)[0], atol=1e-5)

  eval_config = Config.make(task="linear_eval", hub_module=export_dir, workdir=str(tmp_path / "eval"),
                            dataset="fashion_mnist", dataset_dir=fashion_mnist_dir, batch_size=16,
                            eval_batch_size=32, preprocessing=config.preprocessing, resize_size="36",
                            crop_size="33", splits_per_side=3, patch_jitter=2,
                            combine_patches="avg_pool", lr=0.1, train_steps=3, eval_steps=2,
                            val_split="test", save_checkpoints_secs=3600, log_every_steps=3)
  evaluator = Trainer(eval_config)
  evaluator.train()
  metrics = evaluator.evaluate()
  assert "top1_accuracy_pre_logits" in metrics and 0.0 <= metrics["top1_accuracy_pre_logits"] <= 1.0
