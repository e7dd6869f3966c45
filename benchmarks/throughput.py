"""How fast is it: training images/s per task and network, the input pipeline alone, FLOP rates.

  python benchmarks/throughput.py --quick                  # every task's fashion_mnist config, CPU
  python benchmarks/throughput.py --tasks=simclr --architectures=resnet50 --image_size=224 \
      --batch_size=64 --precisions=fp32,mixed_bfloat16 --jit_compile
  python benchmarks/throughput.py --tasks=simclr,swav --on_nonfinite=ignore,stop,ignore,stop \
      --nopipeline --flops=no                              # the step's non-finite guard, A/B
  python benchmarks/throughput.py --tasks= --resnet50=yes  # only ResNet-50 at 224 (auto on a GPU)
  python benchmarks/throughput.py --notrain --flops=no --jpeg_photos=512 --flags_dataset=imagenet \
      --tasks=supervised,rotation,simclr,swav --batch_size=64 --augment_on_device
                                  # the imagenet chains on photo-sized JPEG shards it makes

Training: the Trainer's own train function (the tf.function loop `train` runs) on one batch of
the task's real input repeated (--data=synthetic: the input costs nothing) or on the input
pipeline (--data=real); warm-up steps first, then the median of --runs timed runs of --steps steps.
An "image" is one example of the dataset, whatever views the task makes of it.

FLOPs: the task's forward pass traced on that batch, convolutions and matrix products counted
(flops.py); a training step is counted as 3x the forward. On the CPU the achieved rate is set
against a large float32 matrix product timed in the same run.

Input pipeline: records read, decoded and preprocessed by each task's training chain, per second.

On a GPU (or with --resnet50=yes) ResNet-50 v2 at 224 is also run supervised in fp32 and in mixed
precision (float16) with XLA.
"""

import os
import sys
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import configs  # noqa: E402
import flops as flops_lib  # noqa: E402
import jpeg_shards  # noqa: E402
import results  # noqa: E402

TASKS = ("supervised", "rotation", "exemplar", "jigsaw", "relative_patch_location", "simclr", "byol",
         "swav", "ava")

flags.DEFINE_list("tasks", list(TASKS), "Tasks to time (their flags/<task>/<flags_dataset>.cfg).")
flags.DEFINE_list("architectures", [], "Networks to time each task with (default: the config's).")
flags.DEFINE_integer("filters_factor", None, "Override the config's width.")
flags.DEFINE_integer("batch_size", None, "Global batch (default: the config's).")
flags.DEFINE_integer("image_size", None, "Training image size: scales every size of the config's "
                     "chain (resize, crop, image_size, multi-crop sizes) by image_size / its own.")
flags.DEFINE_list("precisions", ["fp32"], "Any of fp32, mixed_float16, mixed_bfloat16.")
flags.DEFINE_bool("jit_compile", False, "Compile the training step with XLA.")
flags.DEFINE_list("on_nonfinite", ["stop"], "The step's non-finite guard (--on_nonfinite) of each "
                  "row; repeat them to interleave an A/B comparison, e.g. ignore,stop,ignore,stop.")
flags.DEFINE_enum("data", "synthetic", ["synthetic", "real"], "Repeated batch, or the input pipeline.")
flags.DEFINE_integer("warmup_steps", 5, "Untimed steps first (tracing, allocation).")
flags.DEFINE_integer("steps", 10, "Steps per timed run.")
flags.DEFINE_integer("runs", 5, "Timed runs; the median is reported.")
flags.DEFINE_bool("pipeline", True, "Time each task's input pipeline alone.")
flags.DEFINE_integer("pipeline_batches", 30, "Batches per pipeline measurement.")
flags.DEFINE_enum("flops", "auto", ["auto", "yes", "no"], "Count model FLOPs (auto: on the CPU).")
flags.DEFINE_integer("matmul_size", 4096, "Side of the reference matrix product.")
flags.DEFINE_enum("resnet50", "auto", ["auto", "yes", "no"], "ResNet-50 at --resnet50_image_size in "
                  "fp32 and mixed float16 + XLA (auto: when there is a GPU).")
flags.DEFINE_integer("resnet50_batch_size", 128, "Batch of the ResNet-50 runs.")
flags.DEFINE_integer("resnet50_image_size", 224, "Image size of the ResNet-50 runs.")
flags.DEFINE_bool("quick", False, "A few minutes on a laptop CPU: 2 warm-up steps, 3 runs of 3 steps, "
                  "10 pipeline batches, a 2048 matrix product.")
flags.DEFINE_string("flags_dataset", "fashion_mnist", "Which flagfile of each task to start from.")
flags.DEFINE_string("dataset", "fashion_mnist", "Dataset of the records.")
flags.DEFINE_string("dataset_dir", "data/fashion_mnist", "The records.")
flags.DEFINE_string("output", "workdirs/benchmarks/throughput", "Writes <output>.md, .json, .jsonl.")
flags.DEFINE_bool("train", True, "Time training (--notrain: only the input pipelines).")
flags.DEFINE_integer("jpeg_photos", 0, "Make this many 500x375 JPEG photos, convert them to shards "
                     "and read those (--dataset=tfrecord, train split) instead of --dataset_dir.")
flags.DEFINE_bool("augment_on_device", False, "Also time each chain whose views' colour can run "
                  "in the train step with --augment_on_device: what the host is left to do.")
FLAGS = flags.FLAGS

_SIZE_FIELDS = ("image_size", "resize_size", "crop_size", "smaller_size", "size_crops")


def with_image_size(config, size):
  """The config with every size of its chain scaled so that its training image is `size`."""
  base = config.image_size or (config.resize_hw or config.crop_hw or (None,))[0]
  if base is None and config.size_crops_list:
    base = config.size_crops_list[0]
  if not base or base == size:
    return config
  scale = size / float(base)
  changes = {}
  for name in _SIZE_FIELDS:
    value = getattr(config, name)
    if value is None or (name == "size_crops" and not config.task == "swav"):
      continue
    scaled = [max(1, int(round(float(v) * scale))) for v in str(value).split(",")]
    changes[name] = scaled[0] if name in ("image_size", "smaller_size") else ",".join(map(str, scaled))
  return config.replace(**changes)


def task_config(task, architecture=None, precision="fp32", batch_size=None, image_size=None,
                jit_compile=False, filters_factor=None, on_nonfinite="stop"):
  path = configs.flagfile_path(task, FLAGS.flags_dataset)
  if not os.path.exists(path):
    raise ValueError("no flagfile %s" % path)
  config = configs.config_from_flagfile(path, dataset=FLAGS.dataset, dataset_dir=FLAGS.dataset_dir)
  changes = dict(workdir=tempfile.mkdtemp(prefix="tfssl-throughput-"), precision=precision,
                 jit_compile=jit_compile, random_seed=0, steps_per_execution=1,
                 on_nonfinite=on_nonfinite)
  if FLAGS.jpeg_photos:
    changes["train_split"] = "train"  # the converted folder's split (the flagfiles say trainval)
  if architecture:
    changes["architecture"] = architecture
  if filters_factor:
    changes["filters_factor"] = filters_factor
  if batch_size:
    changes["batch_size"] = batch_size
  config = config.replace(**changes)
  return with_image_size(config, image_size) if image_size else config


def image_size_of(config):
  return config.image_size or (config.resize_hw or config.crop_hw or (None,))[0] or (
      config.size_crops_list or (None,))[0]


def training_rate(config, count_flops):
  """{"images_per_sec", "runs", "forward_flops_per_image", ...} of the trainer's train function."""
  import tensorflow as tf
  from tfssl.trainer import Trainer
  trainer = Trainer(config)
  trainer.build()
  run_steps = trainer._make_train_function()  # pylint: disable=protected-access
  batch = next(iter(trainer.input_fn(config.train_split, True)(None)))
  if FLAGS.data == "synthetic":
    dataset = trainer.strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(batch).repeat())
  else:
    dataset = trainer.distributed_dataset(config.train_split, True)
  iterator = iter(dataset)
  start = time.perf_counter()
  run_steps(iterator, tf.constant(FLAGS.warmup_steps, tf.int32))
  trainer.step  # noqa: B018  (reading the step waits for the steps to finish)
  warmup_seconds = time.perf_counter() - start
  seconds = []
  for _ in range(FLAGS.runs):
    start = time.perf_counter()
    run_steps(iterator, tf.constant(FLAGS.steps, tf.int32))
    trainer.step  # noqa: B018
    seconds.append(time.perf_counter() - start)
  rates = [FLAGS.steps * config.batch_size / s for s in seconds]
  out = {"images_per_sec": float(np.median(rates)), "rates": rates, "warmup_seconds": warmup_seconds,
         "loss": trainer._metric_results().get("loss")}  # pylint: disable=protected-access
  if count_flops:
    forward, notes = flops_lib.function_flops(lambda f: trainer.task(f, training=True), batch)
    out["forward_flops_per_image"] = forward / config.batch_size
    out["flops_notes"] = notes[:5]
  return out


def pipeline_rate(config):
  """Training-mode records per second of the task's input pipeline alone."""
  from tfssl.data import datasets
  iterator = iter(datasets.make_input_fn(config, config.train_split, True)(None))
  for _ in range(3):  # fills the shuffle buffer and the prefetch
    next(iterator)
  start = time.perf_counter()
  for _ in range(FLAGS.pipeline_batches):
    next(iterator)
  seconds = time.perf_counter() - start
  return {"records_per_sec": FLAGS.pipeline_batches * config.batch_size / seconds}


def matmul_rate(log, when, dtype="float32"):
  import tensorflow as tf
  rate = flops_lib.matmul_rate(FLAGS.matmul_size, dtype=getattr(tf, dtype))
  print("matrix product %d %s (%s): %.1f GFLOP/s" % (FLAGS.matmul_size, dtype, when, rate / 1e9),
        flush=True)
  return log.add(dict(bench="throughput", kind="matmul", size=FLAGS.matmul_size, when=when,
                      dtype=dtype,
                      flops_per_sec=rate))


class Runner:

  def __init__(self, log, count_flops):
    self.log = log
    self.count_flops = count_flops

  def training(self, task, **settings):
    config = task_config(task, **settings)
    row = dict(bench="throughput", kind="train", task=task, architecture=config.architecture,
               filters_factor=config.filters_factor, batch_size=config.batch_size,
               image_size=image_size_of(config), precision=config.precision,
               jit_compile=config.jit_compile, data=FLAGS.data, steps=FLAGS.steps, runs=FLAGS.runs,
               on_nonfinite=config.on_nonfinite)
    print("== train %s %s x%s batch %d size %s %s%s guard %s" % (
        task, config.architecture, config.filters_factor, config.batch_size, row["image_size"],
        config.precision, " XLA" if config.jit_compile else "", config.on_nonfinite), flush=True)
    try:
      row.update(training_rate(config, self.count_flops))
    except Exception as e:  # pylint: disable=broad-except
      # One network that does not fit or build must not lose the other measurements.
      row["error"] = "%s: %s" % (type(e).__name__, str(e).splitlines()[0][:300] if str(e) else "")
    print("   %s" % (row.get("error") or "%.1f images/s" % row["images_per_sec"]), flush=True)
    return self.log.add(row)

  def pipeline(self, task, augment_on_device=False):
    config = task_config(task, batch_size=FLAGS.batch_size, image_size=FLAGS.image_size)
    config = config.replace(augment_on_device=augment_on_device)
    row = dict(bench="throughput", kind="pipeline", task=task, chain=config.preprocessing,
               batch_size=config.batch_size, image_size=image_size_of(config),
               augment_on_device=augment_on_device)
    print("== pipeline %s: %s%s" % (task, config.preprocessing,
                                    " (augment on device)" if augment_on_device else ""), flush=True)
    try:
      row.update(pipeline_rate(config))
    except Exception as e:  # pylint: disable=broad-except
      row["error"] = "%s: %s" % (type(e).__name__, str(e).splitlines()[0][:300] if str(e) else "")
    return self.log.add(row)


def markdown(info, matmul, train_rows, pipeline_rows):
  parts = ["- machine: %s\n- command: `%s`\n- date: %s\n" % (
      results.describe_machine(info), results.command_line(), results.now())]
  for dtype, ref in sorted((matmul or {}).items()):
    parts.append("- reference: %d x %d %s matrix product, %.1f GFLOP/s (the best of 7 timings "
                 "before and 7 after the training runs)\n" % (
                     ref["size"], ref["size"], dtype, ref["flops_per_sec"] / 1e9))
  headers = ["task", "network", "batch", "image", "precision", "XLA", "--on_nonfinite",
             "images/s (median; min-max)",
             "forward GFLOP/image", "achieved GFLOP/s (3x forward)", "of the matrix product"]
  body = []
  for r in train_rows:
    if r.get("error"):
      body.append([r["task"], "%s x%s" % (r["architecture"], r["filters_factor"]), r["batch_size"],
                   r["image_size"], r["precision"], "yes" if r["jit_compile"] else "no",
                   r.get("on_nonfinite", "stop"), "failed: " + r["error"], "-", "-", "-"])
      continue
    fwd = r.get("forward_flops_per_image")
    achieved = 3 * fwd * r["images_per_sec"] if fwd else None
    ref = (matmul or {}).get("bfloat16" if r["precision"] == "mixed_bfloat16" else "float32",
                             (matmul or {}).get("float32"))
    share = "%.0f%%" % (100 * achieved / ref["flops_per_sec"]) if achieved and ref else "-"
    body.append([r["task"], "%s x%s" % (r["architecture"], r["filters_factor"]), r["batch_size"],
                 r["image_size"], r["precision"], "yes" if r["jit_compile"] else "no",
                 r.get("on_nonfinite", "stop"),
                 "%.1f; %.1f-%.1f" % (r["images_per_sec"], min(r["rates"]), max(r["rates"])),
                 "%.3f" % (fwd / 1e9) if fwd else "-",
                 "%.1f" % (achieved / 1e9) if achieved else "-", share])
  if body:
    parts.append("Training (%s data; %d warm-up steps, median of %d runs of %d steps)\n\n%s\n" % (
        FLAGS.data, FLAGS.warmup_steps, FLAGS.runs, FLAGS.steps,
        results.markdown_table(headers, body)))
  if pipeline_rows:
    # The decode-bound supervised chain is the yardstick of the others, measured in the same run.
    yardstick = next((r.get("records_per_sec") for r in pipeline_rows
                      if r["task"] == "supervised" and not r.get("augment_on_device")), None)
    rows = [[r["task"], "`%s`%s" % (r["chain"], " --augment_on_device" if r.get(
        "augment_on_device") else ""), r["batch_size"], r["image_size"],
             r.get("error") or "%.0f" % r["records_per_sec"],
             "%.2f" % (r["records_per_sec"] / yardstick) if yardstick and not r.get("error")
             else "-"] for r in pipeline_rows]
    parts.append("Input pipeline alone (training mode: read, parse, decode, preprocess, batch; %d "
                 "batches after 3)\n\n%s\n" % (FLAGS.pipeline_batches, results.markdown_table(
                     ["task", "chain", "batch", "image", "records/s", "of supervised's"], rows)))
  return "\n".join(parts)


def apply_quick():
  if FLAGS.quick:
    FLAGS.warmup_steps, FLAGS.steps, FLAGS.runs = 2, 3, 3
    FLAGS.pipeline_batches, FLAGS.matmul_size = 10, 2048


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
  apply_quick()
  import json
  import tensorflow as tf
  info = results.machine()
  on_gpu = bool(tf.config.list_physical_devices("GPU"))
  count_flops = FLAGS.flops == "yes" or (FLAGS.flops == "auto" and not on_gpu)
  log = results.Log(FLAGS.output + ".jsonl", reuse=False)
  matmul_rates = []
  # The reference for mixed_bfloat16 rows is a bfloat16 product, where the CPU has BF16 units.
  dtypes = ["float32"] + (["bfloat16"] if "mixed_bfloat16" in FLAGS.precisions and not on_gpu
                          and flops_lib.cpu_has_bf16() else [])
  if count_flops:
    matmul_rates += [matmul_rate(log, "before", dtype) for dtype in dtypes]
  runner = Runner(log, count_flops)
  train_rows, pipeline_rows = [], []
  tasks = [t for t in FLAGS.tasks if t]
  if FLAGS.jpeg_photos:
    FLAGS.dataset = "tfrecord"
    FLAGS.dataset_dir = jpeg_shards.make_shards(tempfile.mkdtemp(prefix="tfssl-jpeg-"),
                                                FLAGS.jpeg_photos, (375, 500))
  for task in tasks if FLAGS.train else []:
    for architecture in FLAGS.architectures or [None]:
      for precision in FLAGS.precisions:
        for guard in FLAGS.on_nonfinite:
          train_rows.append(runner.training(
              task, architecture=architecture, precision=precision, batch_size=FLAGS.batch_size,
              image_size=FLAGS.image_size, jit_compile=FLAGS.jit_compile,
              filters_factor=FLAGS.filters_factor, on_nonfinite=guard))
  if FLAGS.resnet50 == "yes" or (FLAGS.resnet50 == "auto" and on_gpu):
    for precision, jit in (("fp32", False), ("mixed_float16", True)):
      train_rows.append(runner.training(
          "supervised", architecture="resnet50", filters_factor=4, precision=precision,
          batch_size=FLAGS.resnet50_batch_size, image_size=FLAGS.resnet50_image_size,
          jit_compile=jit))
  if FLAGS.pipeline:
    pipeline_rows = [runner.pipeline(task) for task in tasks]
    if FLAGS.augment_on_device:
      from tfssl.data import preprocess
      pipeline_rows += [runner.pipeline(task, augment_on_device=True) for task in tasks
                        if preprocess.defers_colour(task_config(task).preprocessing)]
  matmul = None
  if count_flops:
    # Other processes may share the CPU: the better of the two is the closer to its peak.
    matmul_rates += [matmul_rate(log, "after", dtype) for dtype in dtypes]
    matmul = {dtype: max((r for r in matmul_rates if r["dtype"] == dtype),
                         key=lambda r: r["flops_per_sec"]) for dtype in dtypes}
  text = markdown(info, matmul, train_rows, pipeline_rows)
  results.write_text(FLAGS.output + ".md", text)
  results.write_text(FLAGS.output + ".json", json.dumps(
      {"machine": info, "command": results.command_line(), "date": results.now(), "matmul": matmul,
       "matmul_timings": matmul_rates,
       "train": train_rows, "pipeline": pipeline_rows}, indent=2, sort_keys=True, default=float) + "\n")
  print(text)


if __name__ == "__main__":
  from tfssl.runtime.cpu_defaults import apply_cpu_defaults
  apply_cpu_defaults()
  logging.set_verbosity(logging.WARNING)
  app.run(main)
