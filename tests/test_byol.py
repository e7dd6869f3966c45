"""BYOL: the EMA rate, a target that starts as a copy, receives no gradient and moves by the EMA
rule (BN moving statistics included), and the symmetric regression loss, against NumPy."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfssl.tasks.byol import ema_rate
from helpers import tasks as helper_tasks
from helpers.real_training import train_flagfile_and_score

BATCH, SIZE, TOTAL = 4, 16, 10
RNG = np.random.RandomState(1)
FEATURES = {"image": tf.constant(RNG.rand(BATCH, 2, SIZE, SIZE, 3).astype(np.float32)),
            "label": tf.constant([1, 2, 3, 4])}


def make_task(**overrides):
  values = dict(task="byol", architecture="cifar_resnet18", filters_factor=1, batch_size=BATCH,
                lr=0.05, epochs=1, weight_decay=0.0, proj_hidden_dim=32, proj_out_dim=16,
                pred_hidden_dim=24, lineareval_while_pretraining=False, tau_base=0.9)
  values.update(overrides)
  return helper_tasks.make_task(FEATURES, steps_per_epoch=TOTAL, total_steps=TOTAL, **values)


def test_ema_rate_follows_the_cosine_schedule_and_the_constant_one():
  for k in (0, 3, 5, 10):
    expected = 1 - (1 - 0.996) * (math.cos(math.pi * k / 10) + 1) / 2
    assert float(ema_rate(k, 10, 0.996)) == pytest.approx(expected, abs=1e-7)
  assert float(ema_rate(0, 10, 0.996)) == pytest.approx(0.996)
  assert float(ema_rate(10, 10, 0.996)) == pytest.approx(1.0)
  assert float(ema_rate(7, 10, 0.99, "constant")) == pytest.approx(0.99)
  with pytest.raises(ValueError, match="tau_schedule"):
    ema_rate(0, 10, 0.99, "linear")


def test_target_starts_as_a_non_trainable_copy():
  task = make_task()
  for t, o in zip(task.momentum.target_weights(), task.momentum.online_weights()):
    np.testing.assert_array_equal(t.numpy(), o.numpy())
  trainable = {id(v) for v in task.trainable_variables}
  assert not any(id(v) in trainable for v in task.momentum.target_weights())
  assert all(id(v) in trainable for v in task.predictor.trainable_variables)


def test_target_receives_no_gradient():
  task = make_task()
  x1, x2 = FEATURES["image"][:, 0], FEATURES["image"][:, 1]
  with tf.GradientTape() as tape:
    tape.watch([v.value for v in task.momentum.target_weights()])
    z2 = task.target(x2, True)
    _, p1 = task.online(x1, True)
    loss = tf.reduce_mean(tf.reduce_sum(p1 * z2, axis=1))
  grads = tape.gradient(loss, [v.value for v in task.momentum.target_weights()])
  assert all(g is None for g in grads)


def test_one_step_moves_the_target_by_the_ema_rule():
  task = make_task()
  k = 3
  task.optimizer.iterations.assign(k)
  before = [v.numpy().copy() for v in task.momentum.target_weights()]
  task.train_step(FEATURES)
  tau = 1 - (1 - 0.9) * (math.cos(math.pi * k / TOTAL) + 1) / 2
  assert float(task.tau_tracker.result()) == pytest.approx(tau, rel=1e-6)
  checked = 0
  for t, o, b in zip(task.momentum.target_weights(), task.momentum.online_weights(), before):
    if "moving" in t.path:
      continue  # the target's own forward also updated these; see the next test
    np.testing.assert_allclose(t.numpy(), tau * b + (1 - tau) * o.numpy(), rtol=1e-5, atol=1e-6)
    checked += 1
  assert checked > 20
  # The online network did move, so the rule is not trivially met.
  online = task.momentum.online_weights()
  assert not all(np.array_equal(o.numpy(), b) for o, b in zip(online, before))


def test_ema_covers_batchnorm_moving_statistics():
  task = make_task()
  moving = [(t, o) for t, o in zip(task.momentum.target_weights(), task.momentum.online_weights())
            if "moving" in t.path]
  assert moving
  for t, o in moving:
    t.assign(tf.zeros_like(t))
    o.assign(tf.ones_like(o))
  task.momentum.update(0.75)
  for t, _ in moving:
    np.testing.assert_allclose(t.numpy(), 0.25)


def test_loss_is_the_sum_of_both_regression_directions():
  task = make_task(tau_schedule="constant")
  x1, x2 = FEATURES["image"][:, 0], FEATURES["image"][:, 1]
  z1, z2 = task.target(x1, True).numpy(), task.target(x2, True).numpy()
  p1, p2 = task.online(x1, True)[1].numpy(), task.online(x2, True)[1].numpy()

  def regression(p, z):
    p = p / np.linalg.norm(p, axis=1, keepdims=True)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    return np.mean(np.sum((p - z) ** 2, axis=1))

  task.train_step(FEATURES)
  expected = regression(p1, z2) + regression(p2, z1)
  assert float(task.loss_tracker.result()) == pytest.approx(expected, rel=1e-4)
  assert float(task.tau_tracker.result()) == pytest.approx(0.9)


# ---- configs and a short run on real data ----

def test_flagfiles_hold_the_seed_settings(repo_root, fashion_mnist_dir):
  from tfssl.tools.experiment import config_from_flagfile
  from tfssl.train_and_eval import validate
  flagfile = lambda name: str(repo_root / "flags" / "byol" / name)
  seed = config_from_flagfile(flagfile("cifar10.cfg"))
  assert (seed.batch_size, seed.epochs, seed.optimizer, seed.lr, seed.lr_scale_batch_size,
          seed.weight_decay, seed.tau_schedule, seed.tau_base) == (
              512, 200, "adam", 1e-3, 512, 0.0, "constant", 0.99)
  assert (seed.architecture, seed.proj_hidden_dim, seed.pred_hidden_dim, seed.proj_out_dim) == (
      "cifar_resnet18", 256, 256, 128)
  for name in ("cifar10.cfg", "fashion_mnist.cfg"):
    validate(config_from_flagfile(flagfile(name), workdir="/unused", dataset_dir=fashion_mnist_dir))


def test_the_fashion_mnist_config_builds_torchs_batchnorm_and_init(repo_root):
  # Issue #16: the PyTorch implementation this recipe is compared with builds its ResNet with
  # torch's BatchNorm (momentum 0.1 = TF's 0.9, epsilon 1e-5) and kaiming fan-out convs.
  from tfssl.models import get_net_for_task
  from tfssl.tools.experiment import config_from_flagfile
  config = config_from_flagfile(str(repo_root / "flags" / "byol" / "fashion_mnist.cfg"))
  net = get_net_for_task(config, None)
  norms = [l for l in net._flatten_layers(include_self=False)
           if isinstance(l, keras.layers.BatchNormalization)]
  assert norms and all((n.momentum, n.epsilon) == (0.9, 1e-5) for n in norms)
  convs = [l for l in net._flatten_layers(include_self=False) if isinstance(l, keras.layers.Conv2D)]
  init = convs[0].kernel_initializer
  assert isinstance(init, keras.initializers.VarianceScaling)
  assert (init.scale, init.mode, init.distribution) == (2.0, "fan_out", "untruncated_normal")


@pytest.mark.slow
def test_a_few_steps_on_fashion_mnist_lower_the_loss(repo_root, fashion_mnist_dir, tmp_path):
  trainer, before, after = train_flagfile_and_score(repo_root, "byol", fashion_mnist_dir, tmp_path)
  assert trainer.step == 40
  assert after < before - 0.05, (before, after)
