"""AVA (AAG): the three views share one forward pass (one BatchNorm batch of 3B) and the loss is
the seed's GNT-Xent, written here in NumPy from reference section 1.2."""

import numpy as np
import pytest
import tensorflow as tf

from helpers import tasks as helper_tasks
from helpers.real_training import train_flagfile_and_score

BATCH, SIZE = 4, 16
RNG = np.random.RandomState(3)
FEATURES = {"image": tf.constant(RNG.rand(BATCH, 3, SIZE, SIZE, 3).astype(np.float32)),
            "label": tf.constant([5, 6, 7, 8])}


def make_task(**overrides):
  values = dict(task="ava", architecture="cifar_resnet18", filters_factor=1, batch_size=BATCH,
                lr=0.03, epochs=1, weight_decay=5e-4, lr_schedule="cosine")
  values.update(overrides)
  return helper_tasks.make_task(FEATURES, steps_per_epoch=5, total_steps=5, **values)


def numpy_gnt_xent(x, y, aux, t=0.1):
  """LossNet of the seed: S_ab = exp(a b^T / t); the mutual term without the positive in the
  denominator, doubled, plus four auxiliary terms with cross-view negatives only."""
  x, y, aux = (v.astype(np.float64) for v in (x, y, aux))
  s = lambda a, b: np.exp(a @ b.T / t)
  sxy, sxx, syy = s(x, y), s(x, x), s(y, y)
  d = lambda m: np.diag(m)
  mutual = np.mean(-2 * np.log(d(sxy) / (sxy.sum(1) - d(sxy) + sxx.sum(1) - d(sxx)
                                         + syy.sum(1) - d(syy) + 1e-10)))
  total = mutual
  for a, b in ((x, aux), (y, aux), (aux, x), (aux, y)):
    m = s(a, b)
    total += np.mean(-np.log(d(m) / (m.sum(1) - d(m))))
  return total


def test_loss_is_gnt_xent_of_one_joint_forward_pass():
  task = make_task(lineareval_while_pretraining=False)
  views = FEATURES["image"].numpy()
  # The test concatenates the views itself: BatchNorm statistics over all 3B images.
  joint = np.concatenate([views[:, 0], views[:, 1], views[:, 2]])
  h, _ = task.backbone(tf.constant(joint), training=True)
  z = task.head(h).numpy()
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  expected = numpy_gnt_xent(z[:BATCH], z[BATCH:2 * BATCH], z[2 * BATCH:])
  task.train_step(FEATURES)
  assert float(task.loss_tracker.result()) == pytest.approx(expected, rel=1e-4)
  # View by view would have given other batch statistics, hence another loss.
  separate = [task.backbone(tf.constant(views[:, v]), training=True)[0] for v in range(3)]
  assert not np.allclose(np.concatenate(separate), h.numpy(), atol=1e-3)


def test_embeddings_are_unit_128d_and_train_step_learns():
  task = make_task()
  z = task(FEATURES, training=False).numpy()
  assert z.shape == (3 * BATCH, 128)
  np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)
  before = [v.numpy().copy() for v in task.trainable_variables]
  task.train_step(FEATURES)
  assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, task.trainable_variables))
  assert [m.name for m in task.metrics] == ["loss", "sup_loss", "sup_accuracy"]
  ends = task.representation(FEATURES["image"][:, 0])
  assert ends["proj_head_output"].shape == (BATCH, 128)


def test_two_views_are_refused_with_the_op_to_use():
  task = make_task()
  with pytest.raises(ValueError, match="ava_views"):
    task.train_step({"image": FEATURES["image"][:, :2], "label": FEATURES["label"]})


# ---- configs and a short run on real data ----

def test_flagfiles_hold_the_seed_settings(repo_root, fashion_mnist_dir):
  from tfssl.tools.experiment import config_from_flagfile
  from tfssl.train_and_eval import validate
  flagfile = lambda name: str(repo_root / "flags" / "ava" / name)
  seed = config_from_flagfile(flagfile("cifar10.cfg"))
  assert (seed.batch_size, seed.epochs, seed.lr, seed.lr_scale_batch_size, seed.temperature,
          seed.optimizer, seed.momentum, seed.lr_schedule, seed.warmup_epochs, seed.weight_decay) == (
              128, 1000, 0.03, 128, 0.1, "sgd", 0.9, "cosine", 0, 5e-4)
  assert (seed.architecture, seed.filters_factor, seed.proj_out_dim, seed.randaugment_n,
          seed.randaugment_m, seed.preprocessing) == ("cifar_resnet18", 4, 128, 2, 10, "ava_views")
  for name in ("cifar10.cfg", "fashion_mnist.cfg"):
    validate(config_from_flagfile(flagfile(name), workdir="/unused", dataset_dir=fashion_mnist_dir))


@pytest.mark.slow
def test_a_few_steps_on_fashion_mnist_lower_the_loss(repo_root, fashion_mnist_dir, tmp_path):
  trainer, before, after = train_flagfile_and_score(repo_root, "ava", fashion_mnist_dir, tmp_path)
  assert trainer.step == 40
  assert after < before - 0.05, (before, after)
