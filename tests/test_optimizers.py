"""Learning-rate schedules and optimizers against hand computations and the TF1 originals."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfssl import optimizers
from tfssl.config import Config


def _config(**overrides):
  flags = dict(task="supervised", lr=0.1, batch_size=64, lr_scale_batch_size=256, epochs=10)
  flags.update(overrides)
  return Config.make(**flags)


def _values(schedule, steps):
  return [float(schedule(step)) for step in steps]


# ---- schedules -------------------------------------------------------------------------------

def test_piecewise_schedule_hand_values():
  # base = 0.1 * 64 / 256 = 0.025; warm-up over 2 epochs * 10 steps; decays at epochs 5 and 8.
  schedule = optimizers.build_lr_schedule(
      _config(warmup_epochs=2, decay_epochs="5,8", lr_decay_factor=0.1), 10, 100)
  steps = [0, 10, 19, 20, 50, 51, 80, 81, 99]
  want = [0.0, 0.0125, 0.02375, 0.025, 0.025, 0.0025, 0.0025, 0.00025, 0.00025]
  np.testing.assert_allclose(_values(schedule, steps), want, rtol=1e-6)


def _original_get_lr(step, base, steps_per_epoch, decay_epochs, factor, warmup_epochs):
  """The original trainer's get_lr, in Python: warm-up, then tf.train.piecewise_constant."""
  if step < warmup_epochs * steps_per_epoch:
    return step * base / (warmup_epochs * steps_per_epoch)
  boundaries = [int(e * steps_per_epoch) for e in decay_epochs]
  for i, boundary in enumerate(boundaries):
    if step <= boundary:
      return base * factor ** i
  return base * factor ** len(boundaries)


def test_piecewise_schedule_matches_the_original_with_fractional_epochs():
  config = _config(lr=0.2, batch_size=32, lr_scale_batch_size=128, warmup_epochs=0.55,
                   decay_epochs="1.5,3.25", lr_decay_factor=0.5)
  schedule = optimizers.build_lr_schedule(config, 10, 40)
  steps = range(45)
  want = [_original_get_lr(s, 0.05, 10, (1.5, 3.25), 0.5, 0.55) for s in steps]
  np.testing.assert_allclose(_values(schedule, steps), want, rtol=1e-6)


def test_piecewise_default_decay_is_none_until_the_last_epoch():
  # The original's default decay_epochs is [epochs]: constant lr for the whole run.
  schedule = optimizers.build_lr_schedule(_config(lr=0.3, batch_size=256), 10, 100)
  np.testing.assert_allclose(_values(schedule, [0, 55, 100]), [0.3, 0.3, 0.3], rtol=1e-6)


def test_cosine_schedule_hand_values():
  # SimCLR: base 0.3 * 512 / 256 = 0.6, 1 warm-up epoch of 10 steps, cosine over 40 steps to 0.
  config = _config(lr=0.3, batch_size=512, lr_scale_batch_size=256, warmup_epochs=1,
                   lr_schedule="cosine")
  schedule = optimizers.build_lr_schedule(config, 10, 50)
  steps = [0, 5, 10, 20, 30, 50, 60]
  want = [0.0, 0.3, 0.6, 0.6 * 0.5 * (1 + math.cos(math.pi / 4)), 0.3, 0.0, 0.0]
  np.testing.assert_allclose(_values(schedule, steps), want, rtol=1e-6, atol=1e-7)


def test_schedule_survives_keras_serialization():
  schedule = optimizers.build_lr_schedule(
      _config(warmup_epochs=1, decay_epochs="3", lr_schedule="piecewise"), 10, 50)
  clone = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
  steps = [0, 5, 10, 30, 31, 49]
  assert isinstance(clone, optimizers.WarmupSchedule)
  np.testing.assert_allclose(_values(clone, steps), _values(schedule, steps))


def test_unknown_schedule_is_one_clear_line():
  with pytest.raises(ValueError, match="unknown lr schedule 'linear'") as error:
    optimizers.build_lr_schedule(_config(lr_schedule="linear"), 10, 100)
  assert "\n" not in str(error.value)


# ---- LARS ------------------------------------------------------------------------------------

def _lars_reference(weights, grads_per_step, lr, momentum, wd, eeta, adapted, nesterov=False,
                    decayed=None):
  """SimCLR's lars_optimizer.py (classic momentum), one variable at a time, in float64."""
  out = []
  decayed = adapted if decayed is None else decayed
  for w, grads, adapt, decay in zip(weights, zip(*grads_per_step), adapted, decayed):
    w, v = w.astype(np.float64), np.zeros(w.shape)
    for g in grads:
      g = g.astype(np.float64)
      trust = 1.0
      if adapt:
        g = g + (wd * w if decay else 0.0)
        w_norm, g_norm = np.linalg.norm(w), np.linalg.norm(g)
        trust = eeta * w_norm / g_norm if w_norm > 0 and g_norm > 0 else 1.0
      v = momentum * v + lr * trust * g
      w = w - (momentum * v + lr * trust * g if nesterov else v)
    out.append(w)
  return out


def _dense_bn_model(seed):
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2),
                            keras.layers.BatchNormalization()])
  rng = np.random.default_rng(seed)
  weights = [rng.normal(size=v.shape).astype(np.float32) for v in model.trainable_variables]
  for v, w in zip(model.trainable_variables, weights):
    v.assign(w)
  grads = [[rng.normal(size=w.shape).astype(np.float32) for w in weights] for _ in range(2)]
  return model, weights, grads


@pytest.mark.parametrize("nesterov", [False, True])
def test_lars_two_steps_match_the_hand_computation(nesterov):
  model, weights, grads = _dense_bn_model(0)
  paths = [v.path for v in model.trainable_variables]
  assert [p.split("/")[-1] for p in paths] == ["kernel", "bias", "gamma", "beta"]
  # Only the kernel gets weight decay and the trust ratio; bias and BN parameters are excluded.
  adapted = [True, False, False, False]
  opt = optimizers.LARS(learning_rate=0.5, momentum=0.9, weight_decay=0.1, nesterov=nesterov)
  for step, step_grads in enumerate(grads):
    opt.apply_gradients(zip([tf.constant(g) for g in step_grads], model.trainable_variables))
    want = _lars_reference(weights, grads[:step + 1], 0.5, 0.9, 0.1, 0.001, adapted, nesterov)
    for v, w in zip(model.trainable_variables, want):
      np.testing.assert_allclose(v.numpy(), w, rtol=1e-5, atol=1e-7, err_msg=v.path)


def test_lars_exempt_variables_keep_the_trust_ratio_but_get_no_decay():
  # A net's own exemption (RevNet's stem), as SimCLR's separate decay / adaptation lists.
  model, weights, grads = _dense_bn_model(1)
  opt = optimizers.LARS(learning_rate=0.5, momentum=0.9, weight_decay=0.1)
  opt.exempt_from_weight_decay([model.trainable_variables[0]])
  for step, step_grads in enumerate(grads):
    opt.apply_gradients(zip([tf.constant(g) for g in step_grads], model.trainable_variables))
  want = _lars_reference(weights, grads, 0.5, 0.9, 0.1, 0.001, [True, False, False, False],
                         decayed=[False] * 4)
  decayed = _lars_reference(weights, grads, 0.5, 0.9, 0.1, 0.001, [True, False, False, False])
  assert not np.allclose(want[0], decayed[0], rtol=1e-4)  # the decay would have shown
  for v, w in zip(model.trainable_variables, want):
    np.testing.assert_allclose(v.numpy(), w, rtol=1e-5, atol=1e-7, err_msg=v.path)
  with pytest.raises(RuntimeError, match="before the optimizer is built"):
    opt.exempt_from_weight_decay([model.trainable_variables[0]])


def test_lars_trust_ratio_is_one_for_zero_weights():
  kernel = keras.Variable(np.zeros((2, 2), np.float32), name="kernel")
  opt = optimizers.LARS(learning_rate=0.1, momentum=0.9, weight_decay=0.0)
  opt.apply_gradients([(tf.constant([[1.0, 2.0], [3.0, 4.0]]), kernel)])
  np.testing.assert_allclose(kernel.numpy(), -0.1 * np.array([[1.0, 2.0], [3.0, 4.0]]), rtol=1e-6)


def test_lars_config_round_trip():
  schedule = optimizers.WarmupSchedule(0.4, warmup_steps=3)
  opt = optimizers.LARS(learning_rate=schedule, momentum=0.8, weight_decay=1e-6, eeta=0.002,
                        nesterov=True)
  clone = optimizers.LARS.from_config(opt.get_config())
  assert (clone.momentum, clone.lars_weight_decay, clone.eeta, clone.nesterov) == (
      0.8, 1e-6, 0.002, True)
  assert clone.weight_decay is None  # Keras' decoupled decay stays off
  np.testing.assert_allclose(float(clone.learning_rate), 0.0)


# ---- SGD and Adam against the TF1 originals ---------------------------------------------------

def _run_tf1(optimizer_fn, schedule, grads):
  step = [0]
  var = tf.Variable([1.0, -2.0, 0.5])
  opt = optimizer_fn(lambda: schedule(step[0]))
  for i, g in enumerate(grads):
    step[0] = i
    opt.apply_gradients([(tf.constant(g), var)])
  return var.numpy()


def _run_keras(optimizer, grads):
  var = keras.Variable([1.0, -2.0, 0.5])
  for g in grads:
    optimizer.apply_gradients([(tf.constant(g), var)])
  return var.numpy()


GRADS = [[1.0, 0.5, -1.0], [0.3, -0.2, 2.0], [-1.0, 1.0, 0.5], [0.4, 0.4, 0.4]]


def test_sgd_matches_tf1_momentum_optimizer_while_the_lr_changes():
  schedule = optimizers.WarmupSchedule(0.4, warmup_steps=3)  # 0, 0.133, 0.267, 0.4
  config = _config(optimizer="sgd", momentum=0.9)
  got = _run_keras(optimizers.build_optimizer(config, schedule), GRADS)
  want = _run_tf1(lambda lr: tf.compat.v1.train.MomentumOptimizer(lr, momentum=0.9), schedule,
                  GRADS)
  np.testing.assert_allclose(got, want, rtol=1e-6)
  # Keras' SGD keeps the old lr inside its velocity, so during a warm-up it is another update.
  keras_sgd = _run_keras(keras.optimizers.SGD(schedule, momentum=0.9), GRADS)
  assert np.abs(keras_sgd - want).max() > 1e-3


def test_adam_matches_tf1_adam_optimizer():
  schedule = optimizers.WarmupSchedule(0.01, decay="piecewise", boundaries=[1], decay_factor=0.5)
  got = _run_keras(optimizers.build_optimizer(_config(optimizer="adam"), schedule), GRADS)
  want = _run_tf1(tf.compat.v1.train.AdamOptimizer, schedule, GRADS)
  np.testing.assert_allclose(got, want, rtol=1e-6)


# ---- build_optimizer -------------------------------------------------------------------------

def test_build_optimizer_kinds_and_loss_scaling():
  schedule = optimizers.WarmupSchedule(0.1)
  sgd = optimizers.build_optimizer(_config(optimizer="sgd", momentum=0.8), schedule)
  assert isinstance(sgd, optimizers.MomentumSGD) and sgd.momentum == 0.8 and not sgd.nesterov
  lars = optimizers.build_optimizer(_config(optimizer="lars", weight_decay=1e-6), schedule)
  assert isinstance(lars, optimizers.LARS) and lars.lars_weight_decay == 1e-6
  scaled = optimizers.build_optimizer(_config(optimizer="lars", precision="mixed_float16"),
                                      schedule)
  assert isinstance(scaled, keras.optimizers.LossScaleOptimizer)
  assert isinstance(scaled.inner_optimizer, optimizers.LARS)


def test_unknown_optimizer_is_one_clear_line():
  with pytest.raises(ValueError, match="unknown --optimizer 'rmsprop': use one of sgd, adam, lars"):
    optimizers.build_optimizer(_config(optimizer="rmsprop"), optimizers.WarmupSchedule(0.1))


# ---- LARS on 2 replicas (the two logical CPUs of the test process, tests/conftest.py) ------

def _mirrored_run(path):
  from tfssl.runtime.strategy import mirrored_strategy, split_cpu
  strategy = mirrored_strategy(split_cpu(2))
  rng = np.random.default_rng(1)
  # Each replica has its own gradients; the optimizer sums them across replicas.
  local_grads = [[[rng.normal(size=s).astype(np.float32) for s in ((3, 2), (2,), (2,), (2,))]
                  for _ in range(2)] for _ in range(2)]  # [step][replica][variable]
  with strategy.scope():
    model, _, _ = _dense_bn_model(0)
    opt = optimizers.LARS(learning_rate=0.5, momentum=0.9, weight_decay=0.1)
    opt.build(model.trainable_variables)

  @tf.function
  def apply(grads):
    strategy.run(lambda g: opt.apply_gradients(zip(g, model.trainable_variables)), args=(grads,))

  for step in range(2):
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda ctx, step=step: [tf.constant(g) for g in local_grads[step][
            ctx.replica_id_in_sync_group]])
    apply(per_replica)
  np.savez(path, *[v.numpy() for v in model.trainable_variables],
           *[np.asarray(g) for g in np.array(local_grads, dtype=object).reshape(-1)])


def test_lars_under_mirrored_strategy_equals_one_device_with_summed_gradients(tmp_path):
  path = str(tmp_path / "lars.npz")
  _mirrored_run(path)
  with np.load(path, allow_pickle=False) as saved:
    arrays = [saved["arr_%d" % i] for i in range(len(saved.files))]
  assert len(arrays) == 4 + 2 * 2 * 4  # the trained variables, then [step][replica][variable]
  trained, flat_grads = arrays[:4], arrays[4:]
  grads = np.empty(16, dtype=object)
  grads[:] = flat_grads
  grads = grads.reshape(2, 2, 4)  # [step][replica][variable]
  summed = [[grads[s, 0, v] + grads[s, 1, v] for v in range(4)] for s in range(2)]
  _, weights, _ = _dense_bn_model(0)
  want = _lars_reference(weights, summed, 0.5, 0.9, 0.1, 0.001, [True, False, False, False])
  for got, expected in zip(trained, want):
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


def test_lars_is_told_the_nets_weight_decay_exemptions():
  """A task's RevNet stem reaches LARS through build_optimizer (as the trainer calls it)."""
  from tfssl.tasks.base import TaskContext
  from tfssl.tasks.supervised import Supervised
  config = Config.make(task="supervised", architecture="revnet50", filters_factor=1, batch_size=2,
                       optimizer="lars", weight_decay=1e-4, lr=0.1, epochs=1)
  task = Supervised(config, TaskContext(num_classes=10))
  task({"image": tf.zeros([2, 32, 32, 3]), "label": tf.constant([0, 1])}, training=False)
  exempt = task.no_weight_decay_variables()
  assert [v.path for v in exempt] == ["supervised/revnet50/root_conv/conv/kernel"]
  opt = optimizers.build_optimizer(config, optimizers.build_lr_schedule(config, 1, 1), exempt)
  opt.build(task.trainable_variables)
  decayed = {v.path: d for v, d in zip(task.trainable_variables, opt._decayed)}  # pylint: disable=protected-access
  adapted = {v.path: a for v, a in zip(task.trainable_variables, opt._adapted)}  # pylint: disable=protected-access
  stem = "supervised/revnet50/root_conv/conv/kernel"
  assert adapted[stem] and not decayed[stem]
  assert sum(decayed.values()) == sum(adapted.values()) - 1  # every other adapted kernel decays


# ---- SimCLR's head_supervised under LARS ----------------------------------------------------

def _simclr_task(**overrides):
  from tfssl.tasks.base import TaskContext
  from tfssl.tasks.simclr import SimCLR
  flags = dict(task="simclr", architecture="cifar_resnet18", filters_factor=1, batch_size=4,
               optimizer="lars", weight_decay=1e-3, lr=0.5, epochs=1, proj_out_dim=8,
               image_size=16, lineareval_while_pretraining=True)
  flags.update(overrides)
  config = Config.make(**flags)
  task = SimCLR(config, TaskContext(num_classes=10))
  task({"image": tf.zeros([2, 2, 16, 16, 3]), "label": tf.constant([0, 1])}, training=False)
  return config, task


def test_lars_leaves_simclrs_head_supervised_alone_and_its_l2_is_in_the_loss():
  config, task = _simclr_task()
  probe = task.not_adapted_variables()
  assert sorted(v.path for v in probe) == ["simclr/head_supervised/dense/bias",
                                           "simclr/head_supervised/dense/kernel"]
  opt = optimizers.build_optimizer(config, optimizers.WarmupSchedule(0.5),
                                   not_adapted=task.not_adapted_variables())
  opt.build(task.trainable_variables)
  # One step with a gradient of ones: the head moves by exactly lr * g (no trust ratio, no decay
  # inside); a backbone kernel moves by lr * trust * (g + wd * w).
  kernel = [v for v in probe if v.path.endswith("kernel")][0]
  conv = [v for v in task.trainable_variables if v.path.endswith("root_conv/conv/kernel")][0]
  before_head, before_conv = kernel.numpy().copy(), conv.numpy().copy()
  grads = [tf.ones_like(v) for v in task.trainable_variables]
  opt.apply_gradients(zip(grads, task.trainable_variables))
  np.testing.assert_allclose(kernel.numpy(), before_head - 0.5, rtol=1e-6)
  g = 1.0 + 1e-3 * before_conv
  trust = 0.001 * np.linalg.norm(before_conv) / np.linalg.norm(g)
  np.testing.assert_allclose(conv.numpy(), before_conv - 0.5 * trust * g, rtol=1e-5, atol=1e-8)
  # SimCLR's add_weight_decay under LARS: wd * l2_loss of head_supervised's kernel, nothing else.
  want = 1e-3 * 0.5 * np.sum(np.square(kernel.numpy()))
  np.testing.assert_allclose(float(task.weight_decay_loss()), want, rtol=1e-5)


def test_the_trainer_tells_lars_about_head_supervised(tmp_path, fashion_mnist_dir):
  from tfssl.trainer import Trainer
  config = Config.make(task="simclr", architecture="cifar_resnet18", filters_factor=1,
                       dataset="fashion_mnist", dataset_dir=fashion_mnist_dir, batch_size=4,
                       image_size=16, preprocessing="simclr_augment", optimizer="lars", lr=0.1,
                       weight_decay=1e-4, train_steps=1, workdir=str(tmp_path), proj_out_dim=8)
  trainer = Trainer(config)
  task = trainer.build()
  adapted = {v.path: a for v, a in zip(task.trainable_variables, trainer.optimizer._adapted)}  # pylint: disable=protected-access
  assert not adapted["simclr/head_supervised/dense/kernel"]
  assert adapted["simclr/cifar_resnet18/root_conv/conv/kernel"]


# ---- SwAV's LARC ------------------------------------------------------------------------------

def _larc_reference(weights, grads_per_step, lrs, momentum, wd, eeta):
  """apex LARC(clip=False) + torch SGD(momentum, weight_decay=wd), in NumPy, step by step."""
  w = [np.array(x, np.float64) for x in weights]
  buf = [np.zeros_like(x) for x in w]
  for grads, lr in zip(grads_per_step, lrs):
    for i, g in enumerate(grads):
      g = np.array(g, np.float64)
      p_norm, g_norm = np.linalg.norm(w[i]), np.linalg.norm(g)
      if p_norm != 0 and g_norm != 0:
        adaptive = eeta * p_norm / (g_norm + p_norm * wd + 1e-8)
        g = (g + wd * w[i]) * adaptive
      buf[i] = momentum * buf[i] + g
      w[i] = w[i] - lr * buf[i]
  return w


def test_larc_matches_apex_larc_around_torch_sgd_while_the_lr_changes():
  rng = np.random.default_rng(0)
  weights = [rng.normal(size=(3, 4)), rng.normal(size=(4,)), np.zeros((2,))]  # a zero weight too
  grads = [[rng.normal(size=w.shape) for w in weights] for _ in range(4)]
  schedule = optimizers.WarmupSchedule(4.8, warmup_steps=3, start_lr=0.3)  # 0.3, 1.8, 3.3, 4.8
  lrs = [0.3, 1.8, 3.3, 4.8]
  np.testing.assert_allclose(_values(schedule, range(4)), lrs, rtol=1e-6)
  opt = optimizers.build_optimizer(_config(optimizer="larc", weight_decay=1e-2, momentum=0.9),
                                   schedule)
  assert isinstance(opt, optimizers.LARC)
  variables = [keras.Variable(w.astype(np.float32)) for w in weights]
  for step_grads in grads:
    opt.apply_gradients([(tf.constant(g, tf.float32), v) for g, v in zip(step_grads, variables)])
  want = _larc_reference(weights, grads, lrs, 0.9, 1e-2, 0.001)
  for v, expected in zip(variables, want):
    np.testing.assert_allclose(v.numpy(), expected, rtol=2e-5, atol=1e-7)
  # LARS keeps the lr inside its momentum and skips the bias: another update.
  lars = optimizers.LARS(learning_rate=schedule, momentum=0.9, weight_decay=1e-2)
  other = [keras.Variable(w.astype(np.float32)) for w in weights]
  for step_grads in grads:
    lars.apply_gradients([(tf.constant(g, tf.float32), v) for g, v in zip(step_grads, other)])
  assert max(np.abs(a.numpy() - b).max() for a, b in zip(other, want)) > 1e-3


def test_larc_adapts_batch_norm_and_biases_too():
  # SwAV: every parameter with a gradient, where LARS (SimCLR) skips BN and biases.
  bias = keras.Variable(np.full([4], 2.0, np.float32), name="bias")
  opt = optimizers.LARC(learning_rate=1.0, momentum=0.0, weight_decay=0.0)
  opt.apply_gradients([(tf.fill([4], 10.0), bias)])
  trust = 0.001 * 4.0 / (20.0 + 1e-8)  # |w| = 4, |g| = 20
  np.testing.assert_allclose(bias.numpy(), 2.0 - 10.0 * trust, rtol=1e-6)


# ---- learning-rate scaling and SwAV's schedule ------------------------------------------------

def test_sqrt_learning_rate_scaling_is_simclrs():
  # SimCLR's README: 0.075 with sqrt scaling at batch 4096 = 0.3 per 256 with linear scaling.
  sqrt = optimizers.scaled_lr(_config(lr=0.075, batch_size=4096, learning_rate_scaling="sqrt"))
  linear = optimizers.scaled_lr(_config(lr=0.3, batch_size=4096, lr_scale_batch_size=256))
  assert sqrt == pytest.approx(4.8) and linear == pytest.approx(4.8)
  assert optimizers.scaled_lr(_config(lr=0.075, batch_size=256, learning_rate_scaling="sqrt")) \
      == pytest.approx(1.2)
  with pytest.raises(ValueError, match="learning_rate_scaling=cubic"):
    optimizers.scaled_lr(_config(learning_rate_scaling="cubic"))


def test_swav_schedule_starts_at_start_warmup_and_ends_at_final_lr():
  # main_swav.py: warm-up from start_warmup to base_lr, then final_lr + (base - final) * cosine.
  config = _config(lr=4.8, batch_size=4096, lr_scale_batch_size=4096, warmup_epochs=10,
                   lr_schedule="cosine", start_warmup=0.3, final_lr=0.0048)
  steps_per_epoch, total = 10, 800
  schedule = optimizers.build_lr_schedule(config, steps_per_epoch, total)
  warmup = 10 * steps_per_epoch
  assert float(schedule(0)) == pytest.approx(0.3)
  assert float(schedule(warmup)) == pytest.approx(4.8)
  last = total - 1
  swav_last = 0.0048 + 0.5 * (4.8 - 0.0048) * (1 + math.cos(math.pi * (last - warmup)
                                                            / (total - warmup)))
  assert float(schedule(last)) == pytest.approx(swav_last, rel=1e-5)
  assert float(schedule(total)) == pytest.approx(0.0048, rel=1e-5)
  with pytest.raises(ValueError, match="final_lr"):
    optimizers.build_lr_schedule(_config(final_lr=0.1), 10, 100)
