"""SimCLR: the task's loss is NT-Xent (written here in NumPy from the paper) of its two views'
projections, the projection modes, and the linear probe on stop-gradient features."""

import numpy as np
import pytest
import tensorflow as tf

from helpers import tasks as helper_tasks
from helpers.real_training import train_flagfile_and_score

BATCH, SIZE = 4, 16
RNG = np.random.RandomState(0)
FEATURES = {"image": tf.constant(RNG.rand(BATCH, 2, SIZE, SIZE, 3).astype(np.float32)),
            "label": tf.constant([0, 3, 3, 7])}


def make_task(lr=0.0, **overrides):
  values = dict(task="simclr", architecture="cifar_resnet18", filters_factor=1, batch_size=BATCH,
                lr=lr, epochs=1, temperature=0.5, weight_decay=1e-4, proj_out_dim=16)
  values.update(overrides)
  return helper_tasks.make_task(FEATURES, steps_per_epoch=5, total_steps=5, **values)


def numpy_nt_xent(z1, z2, t):
  """The paper's loss: l(i, j) = -log exp(s_ij / t) / sum_{k != i} exp(s_ik / t) over the 2N
  normalised projections, averaged over all 2N anchors."""
  z = np.concatenate([z1, z2]).astype(np.float64)
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  n = len(z1)
  sim = z @ z.T / t
  losses = []
  for i in range(2 * n):
    j = (i + n) % (2 * n)
    others = [k for k in range(2 * n) if k != i]
    losses.append(-(sim[i, j] - np.log(np.sum(np.exp(sim[i, others])))))
  return np.mean(losses)


def test_loss_is_nt_xent_of_the_paired_views_summed_over_both_directions():
  task = make_task(lineareval_while_pretraining=False)
  z, _ = task(FEATURES, training=True)
  z = z.numpy()
  expected = 2.0 * numpy_nt_xent(z[:BATCH], z[BATCH:], 0.5)  # SimCLR sums its two directions
  task.train_step(FEATURES)
  assert float(task.loss_tracker.result()) == pytest.approx(expected, rel=1e-4)
  z1 = z[:BATCH] / np.linalg.norm(z[:BATCH], axis=1, keepdims=True)
  z2 = z[BATCH:] / np.linalg.norm(z[BATCH:], axis=1, keepdims=True)
  accuracy = np.mean(np.argmax(z1 @ z2.T, axis=1) == np.arange(BATCH))
  assert float(task.contrast_acc.result()) == pytest.approx(accuracy)
  assert [m.name for m in task.metrics] == ["loss", "contrast_acc"]


@pytest.mark.parametrize("mode,layers,width", [("none", 0, None), ("linear", 1, 16),
                                                ("nonlinear", 2, 16)])
def test_projection_head_modes(mode, layers, width):
  task = make_task(proj_head_mode=mode, num_proj_layers=2, lineareval_while_pretraining=False)
  z, h = task(FEATURES, training=False)
  assert len(task.projection.dense_layers) == layers
  if mode == "none":
    np.testing.assert_array_equal(z.numpy(), h.numpy())
  else:
    assert z.shape == (2 * BATCH, width)


def test_probe_learns_from_stop_gradient_features_with_labels_per_view():
  task = make_task()
  with tf.GradientTape() as tape:
    _, h = task(FEATURES, training=True)
    sup = task.probe_loss(h, FEATURES["label"], 2)
  grads = tape.gradient(sup, task.backbone.trainable_variables + task.probe.trainable_variables)
  backbone_grads = grads[:len(task.backbone.trainable_variables)]
  assert all(g is None for g in backbone_grads)
  assert all(g is not None for g in grads[len(backbone_grads):])
  logits = task.probe(h).numpy().astype(np.float64)
  labels = np.tile(FEATURES["label"].numpy(), 2)
  log_probs = logits - np.log(np.sum(np.exp(logits), axis=1, keepdims=True))
  assert float(sup) == pytest.approx(-np.mean(log_probs[np.arange(2 * BATCH), labels]), rel=1e-5)


def test_train_step_moves_backbone_and_probe_and_eval_reports_the_probe():
  task = make_task(lr=0.1)
  before = [v.numpy().copy() for v in task.trainable_variables]
  task.train_step(FEATURES)
  after = [v.numpy() for v in task.trainable_variables]
  assert sum(not np.array_equal(a, b) for a, b in zip(before, after)) > len(before) // 2
  assert np.isfinite(float(task.loss_tracker.result()))
  assert [m.name for m in task.metrics] == ["loss", "contrast_acc", "sup_loss", "sup_accuracy"]
  # Eval batches hold one view: evaluation reports the probe only, not a contrastive loss of 0.
  assert [m.name for m in task.eval_metrics] == ["sup_loss", "sup_accuracy"]
  task.reset_metrics()
  task.test_step({"image": FEATURES["image"][:, 0], "label": FEATURES["label"]})
  assert 0.0 <= float(task.sup_accuracy.result()) <= 1.0 and float(task.sup_loss.result()) > 0
  ends = task.representation(FEATURES["image"][:, 0])
  assert ends["proj_head_output"].shape == (BATCH, 16) and "pre_logits" in ends


# ---- configs and a short run on real data ----

def test_flagfiles_hold_the_seed_settings(repo_root, fashion_mnist_dir):
  from tfssl.tools.experiment import config_from_flagfile
  from tfssl.train_and_eval import validate
  flagfile = lambda name: str(repo_root / "flags" / "simclr" / name)
  mindspore = config_from_flagfile(flagfile("cifar10.cfg"))
  assert (mindspore.batch_size, mindspore.epochs, mindspore.optimizer, mindspore.weight_decay,
          mindspore.temperature, mindspore.color_jitter_strength, mindspore.warmup_epochs) == (
              1024, 100, "adam", 3e-4, 0.5, 0.6, 15)
  assert (mindspore.architecture, mindspore.proj_hidden_dim, mindspore.proj_out_dim,
          mindspore.num_proj_layers, mindspore.use_blur) == ("cifar_resnet50", 2048, 128, 2, False)
  simclr = config_from_flagfile(flagfile("imagenet.cfg"))
  # SimCLR v2's README command (tests/test_flagfiles.py checks the rest of the recipe).
  assert (simclr.batch_size, simclr.optimizer, simclr.lr, simclr.learning_rate_scaling,
          simclr.weight_decay, simclr.epochs, simclr.warmup_epochs, simclr.lr_schedule,
          simclr.temperature, simclr.architecture, simclr.mode) == (
              4096, "lars", 0.075, "sqrt", 1e-4, 100, 10, "cosine", 0.1, "resnet50", "v1")
  for name in ("cifar10.cfg", "imagenet.cfg", "fashion_mnist.cfg"):
    validate(config_from_flagfile(flagfile(name), workdir="/unused", dataset_dir=fashion_mnist_dir))


@pytest.mark.slow
def test_a_few_steps_on_fashion_mnist_lower_the_loss(repo_root, fashion_mnist_dir, tmp_path):
  trainer, before, after = train_flagfile_and_score(repo_root, "simclr", fashion_mnist_dir, tmp_path)
  assert trainer.step == 40
  assert after < before - 0.05, (before, after)
  metrics = trainer.evaluate(steps=2)
  assert sorted(metrics) == ["sup_accuracy", "sup_loss"] and metrics["sup_loss"] > 0, metrics
