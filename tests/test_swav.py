"""SwAV: crop ordering, normalised prototypes frozen for the first steps (even under LARS's
in-optimizer weight decay), and the queue (pushed from its epoch, used once full)."""

import numpy as np
import pytest
import tensorflow as tf

from tfssl import losses, optimizers
from tfssl.tasks.swav import crops_to_batch
from helpers import tasks as helper_tasks
from helpers.real_training import train_flagfile_and_score

BATCH = 4
RNG = np.random.RandomState(2)
FEATURES = {"crops_16": tf.constant(RNG.rand(BATCH, 2, 16, 16, 3).astype(np.float32)),
            "crops_8": tf.constant(RNG.rand(BATCH, 3, 8, 8, 3).astype(np.float32)),
            "label": tf.constant([0, 1, 2, 3])}
CROPS = dict(nmb_crops="2,3", size_crops="16,8", min_scale_crops="0.14,0.05",
             max_scale_crops="1,0.14")


def make_task(**overrides):
  values = dict(task="swav", architecture="cifar_resnet18", filters_factor=1, batch_size=BATCH,
                lr=0.5, epochs=1, optimizer="lars", weight_decay=0.1, nmb_prototypes=12,
                proj_hidden_dim=32, proj_out_dim=16, freeze_prototypes_niters=2,
                lineareval_while_pretraining=False, **CROPS)
  values.update(overrides)
  return helper_tasks.make_task(FEATURES, steps_per_epoch=1, total_steps=10, **values)


@pytest.mark.parametrize("optimizer, slots", [("lars", 1), ("larc", 1), ("adam", 2)])
def test_frozen_prototypes_leave_the_optimizer_state_untouched(optimizer, slots):
  # SwAV sets their gradient to None, so the optimizer skips them: at step
  # freeze_prototypes_niters their momentum (Adam: both moments) is still zero, although LARS and
  # LARC put weight decay into the momentum of every variable they update.
  task = make_task(optimizer=optimizer)
  kernel = task.prototypes.kernel
  state = optimizers.slot_variables(task.optimizer, kernel)
  assert len(state) == slots, [v.name for v in state]
  for _ in range(2):
    task.train_step(FEATURES)
  assert int(task.global_step) == task.config.freeze_prototypes_niters
  for v in state:
    np.testing.assert_array_equal(v.numpy(), 0.0, err_msg=v.name)
  # The backbone's state did move, and the prototypes' does once they are free.
  backbone = optimizers.slot_variables(task.optimizer, task.backbone.trainable_variables[0])
  assert backbone and np.abs(backbone[0].numpy()).max() > 0
  task.train_step(FEATURES)
  assert np.abs(state[0].numpy()).max() > 0


def test_crops_go_crop_major():
  crops = np.arange(2 * 3 * 1 * 1 * 1).reshape(2, 3, 1, 1, 1)  # [B=2, n=3, ...]
  flat = crops_to_batch(tf.constant(crops)).numpy().reshape(-1)
  np.testing.assert_array_equal(flat, [crops[b, c, 0, 0, 0] for c in range(3) for b in range(2)])


def test_prototypes_are_unit_and_frozen_for_the_first_steps():
  task = make_task()
  kernel = task.prototypes.kernel
  assert kernel.shape == (16, 12)
  np.testing.assert_allclose(np.linalg.norm(kernel.numpy(), axis=0), 1.0, rtol=1e-6)
  start = kernel.numpy().copy()
  backbone_start = task.backbone.trainable_variables[0].numpy().copy()
  for _ in range(2):
    task.train_step(FEATURES)
  np.testing.assert_array_equal(kernel.numpy(), start)
  assert not np.array_equal(task.backbone.trainable_variables[0].numpy(), backbone_start)
  task.train_step(FEATURES)
  assert not np.allclose(kernel.numpy(), start)
  np.testing.assert_allclose(np.linalg.norm(kernel.numpy(), axis=0), 1.0, rtol=1e-5)
  assert np.isfinite(float(task.loss_tracker.result()))


def _unit_rows(shape):
  x = RNG.randn(*shape).astype(np.float32)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_queue_is_used_once_full_and_fed_from_its_epoch():
  task = make_task(queue_length=8, epoch_queue_starts=1, optimizer="sgd")
  assert task.queue.shape == (2, 8, 16)  # [crops_for_assign, queue_length // replicas, dim]
  z, scores, _, _ = task.embed(FEATURES, True)
  per_crop = tf.split(scores, 5)
  args = ([0, 1], 0.1, 0.05, 3)
  plain = float(losses.swav_loss(per_crop, *args))
  w = task.prototypes.kernel.numpy()

  # Epoch 0 (< epoch_queue_starts): the empty queue is neither used nor fed.
  assert float(task.swapped_loss(scores, z, BATCH)) == pytest.approx(plain, rel=1e-6)
  np.testing.assert_array_equal(task.queue.numpy(), 0.0)

  # A full queue is prepended before Sinkhorn; from epoch 1 the batch's embeddings go in first.
  task.optimizer.iterations.assign(1)
  full = _unit_rows((2, 8, 16))
  task.queue.assign(full)
  queued = float(losses.swav_loss(per_crop, *args, queue_scores=[full[0] @ w, full[1] @ w]))
  assert abs(queued - plain) > 1e-6
  assert float(task.swapped_loss(scores, z, BATCH)) == pytest.approx(queued, rel=1e-6)
  pushed = task.queue.numpy()
  for i, crop in enumerate([0, 1]):
    np.testing.assert_allclose(pushed[i, :BATCH], z.numpy()[crop * BATCH:(crop + 1) * BATCH])
    np.testing.assert_array_equal(pushed[i, BATCH:], full[i, :-BATCH])

  # Partly filled (oldest row still empty): not used yet.
  partial = full.copy()
  partial[:, -1] = 0.0
  task.queue.assign(partial)
  assert float(task.swapped_loss(scores, z, BATCH)) == pytest.approx(plain, rel=1e-6)


def test_a_skipped_step_pushes_nothing_into_the_queue():
  """--on_nonfinite=skip: a step with a NaN pixel changes neither the queue nor a weight; the
  next finite step pushes its embeddings."""
  task = make_task(queue_length=8, epoch_queue_starts=0, optimizer="sgd", on_nonfinite="skip")
  task.queue.assign(_unit_rows((2, 8, 16)))
  step = tf.function(task.train_step)
  crops = FEATURES["crops_16"].numpy()
  crops[0, 0, 0, 0, 0] = np.nan
  before = [np.array(v.numpy()) for v in task.weights + [task.queue]]
  step(dict(FEATURES, crops_16=tf.constant(crops)))
  assert int(task.step_guard.nonfinite_steps.numpy()) == 1
  for a, b in zip(before, [v.numpy() for v in task.weights + [task.queue]]):
    np.testing.assert_array_equal(a, b)
  step(FEATURES)
  assert np.all(np.isfinite(task.queue.numpy()))
  assert not np.array_equal(task.queue.numpy(), before[-1])


def test_queue_length_is_trimmed_to_the_global_batch():
  assert make_task(queue_length=10).queue.shape == (2, 8, 16)
  assert not make_task(queue_length=3).queue_rows


def test_bad_crops_for_assign_is_one_clear_error():
  with pytest.raises(ValueError, match="crops_for_assign"):
    make_task(crops_for_assign="0,5")


def test_eval_batches_and_the_representation():
  task = make_task(lineareval_while_pretraining=True)
  images = FEATURES["crops_16"][:, 0]
  task.test_step({"image": images, "label": FEATURES["label"]})
  assert [m.name for m in task.metrics] == ["loss", "sup_loss", "sup_accuracy"]
  ends = task.representation(images)
  np.testing.assert_allclose(np.linalg.norm(ends["proj_head_output"], axis=1), 1.0, rtol=1e-5)


# ---- configs and a short run on real data ----

def test_flagfiles_hold_the_seed_settings(repo_root, fashion_mnist_dir):
  from tfssl.tools.experiment import config_from_flagfile
  from tfssl.train_and_eval import validate
  flagfile = lambda name: str(repo_root / "flags" / "swav" / name)
  swav = config_from_flagfile(flagfile("imagenet.cfg"))
  assert (swav.epochs, swav.batch_size, swav.optimizer, swav.lr, swav.lr_scale_batch_size,
          swav.weight_decay, swav.warmup_epochs, swav.lr_schedule) == (
              800, 4096, "larc", 4.8, 4096, 1e-6, 10, "cosine")
  assert (swav.nmb_crops_list, swav.size_crops_list, swav.min_scale_crops_list,
          swav.max_scale_crops_list, swav.crops_for_assign_list) == (
              (2, 6), (224, 96), (0.14, 0.05), (1.0, 0.14), (0, 1))
  assert (swav.epsilon, swav.sinkhorn_iterations, swav.nmb_prototypes, swav.temperature,
          swav.freeze_prototypes_niters, swav.queue_length) == (0.05, 3, 3000, 0.1, 313, 0)
  for name in ("imagenet.cfg", "cifar10.cfg", "fashion_mnist.cfg"):
    validate(config_from_flagfile(flagfile(name), workdir="/unused", dataset_dir=fashion_mnist_dir))


@pytest.mark.slow
def test_a_few_steps_on_fashion_mnist_lower_the_loss(repo_root, fashion_mnist_dir, tmp_path):
  trainer, before, after = train_flagfile_and_score(repo_root, "swav", fashion_mnist_dir, tmp_path,
                                                    freeze_prototypes_niters=10)
  assert trainer.step == 40
  assert after < before - 0.05, (before, after)
  np.testing.assert_allclose(np.linalg.norm(trainer.task.prototypes.kernel.numpy(), axis=0), 1.0,
                             rtol=1e-5)
