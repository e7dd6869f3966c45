"""Training the Keras way (tfssl/keras_api.py): `fit` takes the trainer's steps, and runs under a
two-replica MirroredStrategy, on real Fashion-MNIST records."""

import warnings

import numpy as np
import pytest

import tfssl
from tfssl.config import Config


pytestmark = pytest.mark.slow

def rotation_config(workdir, data_dir, **overrides):
  values = dict(task="rotation", architecture="cifar_resnet18", filters_factor=1,
                dataset="fashion_mnist", dataset_dir=data_dir, batch_size=8,
                preprocessing="resize,-1_to_1,rotate", resize_size="32", lr=0.05, train_steps=3,
                random_seed=7, workdir=workdir, save_checkpoints_secs=3600, log_every_steps=3)
  values.update(overrides)
  return Config.make(**values)


def _close(a, b):
  # Two computations of the same steps; a wrong or missing update moves a weight by O(its scale).
  scale = max(1e-3, float(np.abs(b).max()))
  return np.allclose(a, b, rtol=1e-4, atol=1e-5 * scale)


def test_fit_takes_the_same_steps_as_the_trainer(tmp_path, fashion_mnist_dir):
  from tfssl.trainer import Trainer
  trainer = Trainer(rotation_config(str(tmp_path / "trainer"), fashion_mnist_dir))
  logs = trainer.train()
  expected = [w.numpy() for w in trainer.task.weights]

  config = rotation_config(str(tmp_path / "fit"), fashion_mnist_dir)
  task = tfssl.build_task(config)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    history = task.fit(tfssl.training_dataset(config), epochs=1, steps_per_epoch=3, verbose=0)
  # tfssl's dataset is shuffled by its records and seeds: no warning that shuffle is ignored.
  assert not [w for w in caught if "shuffle" in str(w.message)], [str(w.message) for w in caught]
  got = [w.numpy() for w in task.weights]
  assert int(task.optimizer.iterations.numpy()) == 3
  assert set(history.history) == {"loss", "accuracy"}
  np.testing.assert_allclose(history.history["loss"][-1], logs["loss"], rtol=1e-4)
  assert len(got) == len(expected)
  moved = [not _close(w, w0) for w, w0 in zip(expected, [w.numpy() for w in
                                                         tfssl.build_task(config).weights])]
  assert sum(moved) > len(moved) // 2  # the steps did change most weights
  mismatched = [w.path for w, a, b in zip(task.weights, got, expected) if not _close(a, b)]
  assert not mismatched, mismatched[:5]

  # The encoder is a keras.Model over the trained weights: the export's end points.
  encoder = task.encoder()
  images = np.random.RandomState(0).uniform(-1, 1, size=(2, 32, 32, 3)).astype(np.float32)
  end_points = encoder(images)
  assert end_points["pre_logits"].shape == (2, 128) and "block4" in end_points
  assert {id(v) for v in encoder.trainable_variables} <= {id(v) for v in task.trainable_variables}


def test_fit_under_a_two_replica_mirrored_strategy_matches_one_replica(tmp_path, fashion_mnist_dir):
  # SimCLR gathers its negatives from every replica and synchronises BatchNorm: with the global
  # batch split over two replicas its loss is the one-replica loss of the same batch. The two
  # logical CPUs are the test process's own (tests/conftest.py).
  import tensorflow as tf
  from tfssl.runtime.strategy import mirrored_strategy, split_cpu
  config = Config.make(task="simclr", architecture="cifar_resnet18", filters_factor=1,
                       dataset="fashion_mnist", dataset_dir=fashion_mnist_dir, batch_size=16,
                       preprocessing="simclr_augment", image_size=32, lr=1e-4, optimizer="adam",
                       train_steps=2, random_seed=5, workdir=str(tmp_path / "w"),
                       lineareval_while_pretraining=False)
  out = {}
  for name, strategy in (("two", mirrored_strategy(split_cpu(2))),
                         ("one", tf.distribute.OneDeviceStrategy("/cpu:0"))):
    with strategy.scope():
      task = tfssl.build_task(config)
    history = task.fit(tfssl.training_dataset(config), epochs=2, steps_per_epoch=1, verbose=0)
    out[name] = {"replicas": strategy.num_replicas_in_sync, "loss": history.history["loss"],
                 "step": int(task.optimizer.iterations.numpy())}
  assert out["two"]["replicas"] == 2 and out["one"]["replicas"] == 1
  assert out["two"]["step"] == out["one"]["step"] == 2
  assert len(out["two"]["loss"]) == len(out["one"]["loss"]) == 2  # one loss per epoch
  two, one = np.array(out["two"]["loss"]), np.array(out["one"]["loss"])
  assert np.all(np.isfinite(two)) and two[0] > 1.0  # NT-Xent of 2x16 views starts near log(31)
  np.testing.assert_allclose(two, one, rtol=2e-3)
