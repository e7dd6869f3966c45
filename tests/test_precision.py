"""--precision, --jit_compile and --steps_per_execution on real Fashion-MNIST.

Each precision trains a few supervised steps and must give a finite loss on one fixed batch that
is lower after training than before (losses compared, never timings). The Keras policy is
process-global: each run sets it through the trainer's runtime and the test puts float32 back.
--jit_compile and --steps_per_execution go through the command line (in this process,
tests/helpers/cli.py) and must count global steps exactly as a plain run does.
benchmarks/precision.py, which sets fp32 beside mixed_bfloat16 from one seed, is checked here too,
as the script it is.
"""

import json
import os
import re
import shutil

import keras
import pytest
import tensorflow as tf

from helpers import cli

pytestmark = pytest.mark.slow

STEPS = 8
RUN = dict(task="supervised", architecture="resnet18", filters_factor=1, dataset="fashion_mnist",
           batch_size=32, preprocessing="resize,-1_to_1", resize_size="32", lr=0.05,
           weight_decay=1e-4, random_seed=7, train_steps=STEPS, log_every_steps=4,
           save_checkpoints_secs=3600)


def train_and_measure(tmp_path, **overrides):
  """Trains STEPS steps at the run's precision; what the test checks, as a dict."""
  from tfssl.config import Config
  from tfssl.data import datasets
  from tfssl.trainer import Trainer
  config = Config.make(**dict(RUN, workdir=str(tmp_path / "workdir"), **overrides))
  try:
    trainer = Trainer(config)
    task = trainer.build()
    batch = next(iter(datasets.make_input_fn(config, "test", False, batch_size=64)(None)))

    def fixed_loss():
      # Batch statistics: after a few steps BatchNorm's moving averages still mostly hold their
      # initial values, which says nothing about what the weights learned.
      logits = task(batch, training=True)
      return float(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
          batch["label"], tf.cast(logits, tf.float32))))

    # The runtime set Keras's process-wide policy for this run.
    assert keras.mixed_precision.global_policy().name == trainer.runtime.policy
    before = fixed_loss()
    trainer.train()
    after = fixed_loss()
    convs = [l for l in task.backbone._flatten_layers() if isinstance(l, keras.layers.Conv2D)]
    out = {
        "before": before, "after": after, "step": trainer.step,
        "policy": trainer.runtime.policy,
        # The logits conv computes in float32 on purpose (softmax and losses in float32).
        "conv_compute_dtypes": sorted({c.compute_dtype for c in convs if c.name != "logits"}),
        "logits_conv_dtype": [c.compute_dtype for c in convs if c.name == "logits"],
        "variable_dtypes": sorted({v.dtype for v in task.trainable_variables}),
        "logits_dtype": task(batch, training=False).dtype.name,
        "optimizer": type(trainer.optimizer).__name__,
    }
    trainer.close()
    return out
  finally:
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("precision, compute, optimizer", [
    ("fp32", "float32", "SGD"),
    ("mixed_bfloat16", "bfloat16", "SGD"),
    # float16 needs loss scaling (bfloat16 has float32's range and does not).
    ("mixed_float16", "float16", "LossScaleOptimizer"),
])
def test_each_precision_trains_to_a_lower_finite_loss(tmp_path, fashion_mnist_dir, precision,
                                                     compute, optimizer):
  if precision == "mixed_float16":
    # float16 conv and matmul kernels exist on this CPU; a build without them must fail this
    # test rather than skip it, so the probe's answer is part of the result.
    from tfssl.runtime.precision import float16_supported
    assert float16_supported()
  out = train_and_measure(tmp_path, dataset_dir=fashion_mnist_dir, precision=precision)
  assert out["step"] == STEPS
  assert out["policy"] == {"fp32": "float32"}.get(precision, precision)
  assert out["conv_compute_dtypes"] == [compute]
  assert out["logits_conv_dtype"] == ["float32"]
  # Mixed precision computes in 16 bits but keeps float32 weights and float32 logits/losses.
  assert out["variable_dtypes"] == ["float32"]
  assert out["logits_dtype"] == "float32"
  assert out["optimizer"].endswith(optimizer), out
  before, after = out["before"], out["after"]
  assert before == before and after == after and abs(after) != float("inf"), out  # finite
  assert after < 0.9 * before, out


def run_cli(tmp_path, data_dir, *flags):
  args = cli.flags_of(RUN) + ["--dataset_dir=%s" % data_dir,
                              "--workdir=%s" % (tmp_path / "workdir")] + list(flags)
  done = cli.train_and_eval(args)
  assert done.returncode == 0, done.stderr[-4000:]
  return done.stderr


def logged_steps(log):
  """(step, loss) of every progress line `step N/M  ... loss X ...` the trainer logs."""
  return [(int(m.group(1)), float(m.group(2)))
          for m in re.finditer(r"step (\d+)/\d+ .*?\bloss (\S+)", log)]


def checkpoints(workdir):
  return sorted(int(f[len("ckpt-"):-len(".index")]) for f in os.listdir(workdir)
                if f.startswith("ckpt-") and f.endswith(".index"))


def test_steps_per_execution_counts_every_step(tmp_path, fashion_mnist_dir):
  # 6 steps in executions of 3, with a log every 4 steps: the trainer cuts an execution short
  # at the log step, so it runs 3 + 1 + 2 and still ends at exactly 6.
  log = run_cli(tmp_path, fashion_mnist_dir, "--steps_per_execution=3", "--train_steps=6")
  steps = logged_steps(log)
  assert [s for s, _ in steps] == [4, 6], log[-3000:]
  assert all(loss == loss and loss < 10 for _, loss in steps), steps
  assert checkpoints(tmp_path / "workdir") == [6]
  assert os.path.exists(tmp_path / "workdir" / "TRAINING_IS_DONE")


def test_jit_compile_trains_and_counts_steps(tmp_path, fashion_mnist_dir):
  log = run_cli(tmp_path, fashion_mnist_dir, "--jit_compile", "--steps_per_execution=3",
                "--train_steps=6", "--log_every_steps=3")
  steps = logged_steps(log)
  assert [s for s, _ in steps] == [3, 6], log[-3000:]
  assert all(loss == loss and loss < 10 for _, loss in steps), steps
  assert checkpoints(tmp_path / "workdir") == [6]


def test_precision_benchmark_compares_one_seed_at_two_precisions(tmp_path, fashion_mnist_dir):
  """benchmarks/precision.py: both runs start from the same weights and views (their first logged
  losses agree to bfloat16's rounding), the table has a row per precision, and a rerun reuses
  the measured lines instead of training again."""
  # At width 1: the script's mechanism is tested, not the demo network's speed.
  args = ["benchmarks/precision.py", "--train_steps=3", "--set=log_every_steps=1",
          "--set=filters_factor=1",
          "--eval_train_examples=300", "--dataset_dir=%s" % fashion_mnist_dir,
          "--workdir=%s" % (tmp_path / "runs"), "--output=%s" % (tmp_path / "precision")]
  done = cli.process(args, module=None, timeout=900)
  assert done.returncode == 0, done.stderr[-4000:]
  with open(tmp_path / "precision.json") as f:
    runs = json.load(f)["runs"]
  assert [r["precision"] for r in runs] == ["fp32", "mixed_bfloat16"]
  fp32, bf16 = ({int(s): v for s, v in r["loss"].items()} for r in runs)
  assert sorted(fp32) == sorted(bf16) == [1, 2, 3], runs
  # bfloat16 keeps 8 bits of mantissa; SimCLR's loss at step 1 is about 11 here.
  assert abs(bf16[1] - fp32[1]) < 0.02 * fp32[1], (fp32, bf16)
  assert bf16[1] != fp32[1], "the second run did not compute in bfloat16"
  assert all(0 < r["linear_top1"] <= 1 and 0 < r["knn_top1"] <= 1 for r in runs)
  table = (tmp_path / "precision.md").read_text()
  # the network's name and width come from the demo config, whatever its width
  assert re.search(r"^\| fp32 \| resnet18 x\d+ \| 3 \|", table, re.M), table
  assert re.search(r"^\| mixed_bfloat16 \| resnet18 x\d+ \| 3 \|", table, re.M), table
  shutil.rmtree(tmp_path / "runs")
  again = cli.process(args, module=None, timeout=300)
  assert again.returncode == 0, again.stderr[-4000:]
  assert not (tmp_path / "runs").exists()  # nothing trained the second time
  assert (tmp_path / "precision.md").read_text().split("\n", 3)[3] == table.split("\n", 3)[3]
