"""`make gpu-check`: what tfssl does on this machine's accelerator, in one command.

  python benchmarks/gpu_check.py            # a GPU: ResNet-50 at 224, a few minutes
  python benchmarks/gpu_check.py --smoke    # anywhere: a tiny net at 32 px (make test runs it)

On a machine with nothing but `make install` it
1. makes its own JPEG shards (jpeg_shards.py: synthetic 500x375 photo-like images, JPEG-encoded
   at about ImageNet's typical size) with the conversion tool;
2. times supervised ResNet-50 at 224 in fp32, mixed_float16 + XLA and mixed_bfloat16 + XLA, and
   SimCLR (2 x 224) and SwAV (2 x 224 + 6 x 96) in mixed_float16 + XLA, each on a repeated batch
   (the accelerator alone) and on the real input pipeline over those shards, side by side: the
   pipeline keeps up when it reaches 90% of the repeated-batch rate; SimCLR and SwAV once more on
   the pipeline with --augment_on_device (the views' colour in the train step, the host only
   crops); batch 256 or the largest that fits (halved on out-of-memory);
3. trains 50 mixed-precision steps in a child process, kills it after its first checkpoint,
   resumes it to the end, and checks that every logged loss is finite and the resume continued;
4. records each run's peak accelerator memory, and writes a markdown table for docs/RESULTS.md
   (<output>.md, and <output>.json).
"""

import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jpeg_shards  # noqa: E402
import results  # noqa: E402

flags.DEFINE_bool("smoke", False, "A tiny net at 32 px on any device: seconds, for make test.")
flags.DEFINE_string("output", "workdirs/gpu_check/gpu_check", "Writes <output>.md and .json.")
flags.DEFINE_integer("batch_size", None, "Largest batch to try (default 256; smoke 8).")
flags.DEFINE_integer("steps", None, "Timed steps per run (default 10; smoke 2).")
flags.DEFINE_integer("num_images", None, "JPEGs to make (default 1024; smoke 48).")
FLAGS = flags.FLAGS

KEEPS_UP = 0.9  # the pipeline keeps up at 90% of the repeated-batch rate


FULL_PLAN = (("supervised", "fp32", False), ("supervised", "mixed_float16", True),
             ("supervised", "mixed_bfloat16", True), ("simclr", "mixed_float16", True),
             ("swav", "mixed_float16", True))


def settings():
  if FLAGS.smoke:
    # Every part of the check once, small: a CPU emulates float16, so the smoke runs float32.
    return dict(architecture="cifar_resnet18", filters_factor=1, size=32, small=16, batch=4,
                steps=2, warmup=1, images=40, image_hw=(64, 48), resume_steps=6,
                resume_precision="fp32",
                plan=(("supervised", "fp32", False), ("simclr", "fp32", False),
                      ("swav", "fp32", False)))
  return dict(architecture="resnet50", filters_factor=4, size=224, small=96, batch=256, steps=10,
              warmup=5, images=1024, image_hw=(375, 500), resume_steps=50,
              resume_precision="mixed_float16", plan=FULL_PLAN)


# ---- 1. the shards: jpeg_shards.make_shards; 2. the timed runs ----
def run_config(s, records, task, precision, jit, batch, augment_on_device=False):
  from tfssl.config import Config
  values = dict(task=task, architecture=s["architecture"], filters_factor=s["filters_factor"],
                dataset="tfrecord", dataset_dir=records, batch_size=batch, lr=0.1,
                train_steps=10 ** 6, precision=precision, jit_compile=jit, random_seed=0,
                workdir=tempfile.mkdtemp(prefix="tfssl-gpu-check-"), weight_decay=1e-4,
                augment_on_device=augment_on_device)
  if task == "supervised":
    values.update(preprocessing="inception_preprocess", resize_size=str(s["size"]))
  elif task == "simclr":
    values.update(preprocessing="simclr_augment", image_size=s["size"], optimizer="lars",
                  lineareval_while_pretraining=False)
  else:
    values.update(preprocessing="multi_crop", nmb_crops="2,6",
                  size_crops="%d,%d" % (s["size"], s["small"]), min_scale_crops="0.14,0.05",
                  max_scale_crops="1,0.14", nmb_prototypes=3000, optimizer="lars",
                  lineareval_while_pretraining=False, freeze_prototypes_niters=0)
  return Config.make(**values)


def built_trainer(config):
  """A trainer with its task built and its train function traced on first use: one per row, for
  the repeated batch and the real pipeline alike (the same model, fed two ways)."""
  from tfssl.trainer import Trainer
  trainer = Trainer(config)
  trainer.build()
  trainer.run_steps = trainer._make_train_function()  # pylint: disable=protected-access
  return trainer


def timed(trainer, s, real_data):
  """images/s of the trainer's train function on a repeated batch or the real pipeline."""
  import numpy as np
  import tensorflow as tf
  config = trainer.config
  if real_data:
    dataset = trainer.distributed_dataset(config.train_split, True)
  else:
    batch = next(iter(trainer.input_fn(config.train_split, True)(None)))
    dataset = trainer.strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(batch).repeat())
  iterator = iter(dataset)
  trainer.run_steps(iterator, tf.constant(s["warmup"], tf.int32))
  trainer.step  # noqa: B018  (waits for the steps)
  trainer.task.reset_metrics()
  start = time.perf_counter()
  trainer.run_steps(iterator, tf.constant(s["steps"], tf.int32))
  trainer.step  # noqa: B018
  seconds = time.perf_counter() - start
  loss = trainer._metric_results().get("loss")  # pylint: disable=protected-access
  return {"images_per_sec": s["steps"] * config.batch_size / seconds,
          "loss": float(loss) if loss is not None else None,
          "finite": bool(loss is None or np.isfinite(loss))}


def peak_memory(device):
  import tensorflow as tf
  if device is None:
    return None
  try:
    return tf.config.experimental.get_memory_info(device)["peak"]
  except (ValueError, tf.errors.OpError):
    return None


def reset_memory(device):
  import tensorflow as tf
  if device is not None:
    try:
      tf.config.experimental.reset_memory_stats(device)
    except (ValueError, tf.errors.OpError):
      pass


def measure(s, records, task, precision, jit, device):
  """Both rates at the largest batch from s["batch"] down that fits."""
  import tensorflow as tf
  batch = s["batch"]
  while batch >= 1:
    try:
      reset_memory(device)
      trainer = built_trainer(run_config(s, records, task, precision, jit, batch))
      synthetic = timed(trainer, s, real_data=False)
      peak = peak_memory(device)
      real = timed(trainer, s, real_data=True)
      trainer.close()
      # The views' colour in the train step instead (--augment_on_device): the host only crops.
      on_device = None if task == "supervised" else timed(built_trainer(
          run_config(s, records, task, precision, jit, batch, augment_on_device=True)), s,
          real_data=True)
      return dict(task=task, precision=precision, jit=jit, batch=batch, synthetic=synthetic,
                  real=real, real_on_device=on_device, peak_bytes=peak,
                  keeps_up=real["images_per_sec"] >= KEEPS_UP * synthetic["images_per_sec"])
    except tf.errors.ResourceExhaustedError:
      batch //= 2
    except Exception as e:  # pylint: disable=broad-except
      return dict(task=task, precision=precision, jit=jit, batch=batch,
                  error="%s: %s" % (type(e).__name__, str(e).splitlines()[0][:200] if str(e) else ""))
  return dict(task=task, precision=precision, jit=jit, batch=0, error="out of memory at batch 1")


# ---- 3. kill and resume ----
def kill_and_resume(s, records, workdir, precision):
  # The first run is asked for far more steps than it will take: it is killed at its first
  # checkpoint past step 0, whatever the machine's speed, so it can never finish before the kill
  # (a 6-step first run did, on a loaded CPU). The second run resumes there and trains
  # resume_steps more, to a step count known only after the kill.
  def args(train_steps):
    return [sys.executable, "-m", "tfssl.train_and_eval", "--task=supervised",
            "--architecture=%s" % s["architecture"], "--filters_factor=%d" % s["filters_factor"],
            "--dataset=tfrecord", "--dataset_dir=%s" % records, "--workdir=%s" % workdir,
            "--batch_size=%d" % min(s["batch"], 64), "--preprocessing=inception_preprocess",
            "--resize_size=%d" % s["size"], "--lr=0.01", "--precision=%s" % precision,
            "--train_steps=%d" % train_steps, "--save_checkpoints_secs=1", "--log_every_steps=1",
            "--random_seed=1"]
  import tensorflow as tf
  first = subprocess.Popen(args(1000000), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
  deadline = time.time() + 300
  saw_checkpoint = False
  while time.time() < deadline and first.poll() is None:
    latest = tf.train.latest_checkpoint(workdir)
    if latest and int(latest.rsplit("-", 1)[1]) > 0:
      saw_checkpoint = True
      time.sleep(0.5)  # into the next step: the kill lands mid-step, as a preemption would
      break
    time.sleep(0.2)
  was_running = first.poll() is None
  if was_running:
    first.send_signal(signal.SIGKILL)
  log1 = first.communicate()[1]
  latest = tf.train.latest_checkpoint(workdir)  # read once the process is dead
  killed_at = int(latest.rsplit("-", 1)[1]) if latest else None
  if not (saw_checkpoint and was_running):
    return {"ok": False, "killed_after_checkpoint": killed_at, "resumed_at": None,
            "losses_logged": 0, "all_finite": False, "returncode": first.returncode,
            "tail": "the first run wrote no checkpoint past step 0 while running (300 s):\n"
                    + log1[-1500:]}
  end = killed_at + s["resume_steps"]
  second = subprocess.run(args(end), capture_output=True, text=True, timeout=600)
  losses = [float(m.group(1)) for m in re.finditer(r"step \d+/%d .*?\bloss (\S+)" % end,
                                                     second.stderr)]
  resumed = re.search(r"Resumed from \S+ at step (\d+)", second.stderr)
  resumed_at = int(resumed.group(1)) if resumed else None
  ok = (second.returncode == 0 and bool(losses) and all(math.isfinite(v) for v in losses)
        and resumed_at == killed_at
        and tf.train.latest_checkpoint(workdir).endswith("-%d" % end))
  return {"ok": ok, "killed_after_checkpoint": killed_at, "resumed_at": resumed_at, "end": end,
          "losses_logged": len(losses), "all_finite": all(math.isfinite(v) for v in losses),
          "returncode": second.returncode, "tail": None if ok else second.stderr[-1500:]}


# ---- 4. the table ----
def markdown(info, s, rows, resume, device):
  mib = lambda b: "-" if b is None else "%.0f" % (b / 2 ** 20)  # noqa: E731
  header = ["task", "network", "precision", "XLA", "batch", "images/s, repeated batch",
            "images/s, input pipeline", "pipeline keeps up",
            "images/s, pipeline with --augment_on_device", "peak memory (MiB)", "loss finite"]
  body = []
  for r in rows:
    net = "%s x%d at %d" % (s["architecture"], s["filters_factor"], s["size"])
    if r.get("error"):
      body.append([r["task"], net, r["precision"], "yes" if r["jit"] else "no", r["batch"],
                   "failed: " + r["error"], "-", "-", "-", "-", "-"])
      continue
    on_device = r.get("real_on_device")
    body.append([r["task"], net, r["precision"], "yes" if r["jit"] else "no", r["batch"],
                 "%.1f" % r["synthetic"]["images_per_sec"], "%.1f" % r["real"]["images_per_sec"],
                 "yes" if r["keeps_up"] else "no (%.0f%%)" % (
                     100 * r["real"]["images_per_sec"] / r["synthetic"]["images_per_sec"]),
                 "%.1f" % on_device["images_per_sec"] if on_device else "-",
                 mib(r["peak_bytes"]), "yes" if r["synthetic"]["finite"] and r["real"]["finite"]
                 and (on_device is None or on_device["finite"]) else "NO"])
  parts = ["- machine: %s; device %s\n- command: `%s`\n- date: %s\n" % (
      results.describe_machine(info), device or "CPU", results.command_line(), results.now()),
      results.markdown_table(header, body), "",
      "Kill and resume (%s): %s, killed after the checkpoint of step %s, resumed at step %s "
      "and trained %d more steps, %d losses logged, all finite: %s." % (
          s["resume_precision"], "passed" if resume["ok"] else "FAILED",
          resume["killed_after_checkpoint"], resume["resumed_at"], s["resume_steps"],
          resume["losses_logged"], resume["all_finite"])]
  return "\n".join(parts) + "\n"


def main(argv):
  del argv
  import tensorflow as tf
  gpus = tf.config.list_physical_devices("GPU")
  for gpu in gpus:
    tf.config.experimental.set_memory_growth(gpu, True)
  device = "GPU:0" if gpus else None
  s = settings()
  for key, value in (("batch", FLAGS.batch_size), ("steps", FLAGS.steps),
                     ("images", FLAGS.num_images)):
    if value:
      s[key] = value
  work = tempfile.mkdtemp(prefix="tfssl-gpu-check-")
  start = time.time()
  records = jpeg_shards.make_shards(work, s["images"], s["image_hw"])
  print("gpu_check: %d JPEG records in %.0fs" % (s["images"], time.time() - start), flush=True)
  rows = []
  for task, precision, jit in s["plan"]:
    row = measure(s, records, task, precision, jit, device)
    rows.append(row)
    print("gpu_check: %s %s xla=%s: %s" % (task, precision, jit, row.get("error") or "%.1f / %.1f "
          "images/s" % (row["synthetic"]["images_per_sec"], row["real"]["images_per_sec"])),
          flush=True)
  resume = kill_and_resume(s, records, os.path.join(work, "resume"), s["resume_precision"])
  print("gpu_check: kill and resume %s" % ("passed" if resume["ok"] else "FAILED"), flush=True)
  info = results.machine()
  text = markdown(info, s, rows, resume, tf.config.experimental.get_device_details(gpus[0]).get(
      "device_name") if gpus else None)
  results.write_text(FLAGS.output + ".md", text)
  results.write_text(FLAGS.output + ".json", json.dumps(
      {"machine": info, "command": results.command_line(), "date": results.now(), "rows": rows,
       "resume": resume, "seconds": time.time() - start}, indent=2, sort_keys=True, default=str))
  print(text)
  failed = [r for r in rows if r.get("error")] or not resume["ok"]
  sys.exit(1 if failed else 0)


if __name__ == "__main__":
  from tfssl.runtime.console import quiet_tensorflow_banner
  from tfssl.runtime.cpu_defaults import apply_cpu_defaults
  apply_cpu_defaults()
  quiet_tensorflow_banner()
  app.run(main)
