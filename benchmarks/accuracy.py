"""Does it reproduce: every task pretrained on real records, then linear evaluation and kNN.

  python benchmarks/accuracy.py                          # all nine tasks, their fashion_mnist configs
  python benchmarks/accuracy.py --tasks=rotation,simclr --epochs_scale=4
  python benchmarks/accuracy.py --dataset=cifar10 --dataset_dir=D   # flags/<task>/cifar10.cfg

For each task: pretrain with flags/<task>/<dataset>.cfg (labels unused, except by `supervised`, the
ceiling), export, then on the test split (a) linear evaluation of the frozen representation, one
linear head per end point, the best one reported and named, and (b) weighted kNN (k=200, t=0.1)
with the train split as the bank, on the config's --knn_end_point. Beside each task, the same
network at random initialisation through the same two evaluations, and once per dataset the same
two classifiers on raw pixels in [0, 1]. The evaluation chain is the config's --knn_preprocessing,
else its --preprocessing, in eval mode.

Everything measured is appended to <output>.jsonl as it is measured; <output>.md and <output>.json
hold the table. A rerun with the same settings reuses measured lines and resumes unfinished runs
from their workdirs (--remeasure measures again).
"""

import os
import sys
import time

from absl import app
from absl import flags
from absl import logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import configs  # noqa: E402
import evaluation  # noqa: E402
import results  # noqa: E402

TASKS = ("rotation", "exemplar", "jigsaw", "relative_patch_location", "simclr", "byol", "swav", "ava",
         "supervised")

flags.DEFINE_list("tasks", list(TASKS), "Tasks to benchmark (each needs flags/<task>/<dataset>.cfg).")
flags.DEFINE_string("dataset", "fashion_mnist", "Dataset of the records and of the flagfiles.")
flags.DEFINE_string("dataset_dir", "data/fashion_mnist", "The records (TFRecord shards + manifest).")
flags.DEFINE_string("flags_dataset", None, "Use flags/<task>/<this>.cfg (default: --dataset).")
flags.DEFINE_integer("train_steps", None, "Pretraining length in steps, replacing the config's.")
flags.DEFINE_float("epochs_scale", 1.0, "Multiplies the config's pretraining length.")
flags.DEFINE_integer("linear_epochs", 2, "Epochs of linear evaluation.")
flags.DEFINE_integer("knn_k", 200, "Neighbours of the kNN vote.")
flags.DEFINE_integer("knn_max_bank", None, "Cap on the kNN bank (the first train examples).")
flags.DEFINE_bool("baselines", True, "Also evaluate random initialisation and raw pixels.")
flags.DEFINE_string("workdir", "workdirs/benchmarks", "Where the runs' workdirs go.")
flags.DEFINE_string("output", "workdirs/benchmarks/accuracy", "Writes <output>.md, .json, .jsonl.")
flags.DEFINE_bool("remeasure", False, "Ignore measurements already in <output>.jsonl.")
flags.DEFINE_multi_string("set", [], "Override a config flag: `task:flag=value` for one task, "
                          "`flag=value` for all; shown beside the task in the table.")
FLAGS = flags.FLAGS


def task_config(task):
  path = configs.flagfile_path(task, FLAGS.flags_dataset or FLAGS.dataset)
  if not os.path.exists(path):
    raise ValueError("no flagfile %s: add it, or leave --tasks=%s out" % (path, task))
  config = configs.config_from_flagfile(path, dataset=FLAGS.dataset, dataset_dir=FLAGS.dataset_dir)
  if FLAGS.train_steps:
    config = config.replace(train_steps=FLAGS.train_steps)
  elif FLAGS.epochs_scale != 1.0:
    if config.train_steps:
      config = config.replace(train_steps=int(round(config.train_steps * FLAGS.epochs_scale)))
    else:
      config = config.replace(epochs=config.epochs * FLAGS.epochs_scale)
  changes = overrides(task)
  if changes:
    config = config.replace(**changes)
  schedule = "s%d" % config.train_steps if config.train_steps else "e%g" % config.epochs
  schedule += "".join("-%s=%s" % kv for kv in sorted(changes.items()))
  workdir = os.path.join(FLAGS.workdir, FLAGS.dataset, "%s-%s" % (task, schedule))
  return config.replace(workdir=workdir), schedule


def overrides(task):
  """{flag: value} that --set gives `task`."""
  from tfssl.config import flag_assignments
  try:
    return flag_assignments(FLAGS.set, scope=task)
  except ValueError as e:
    raise app.UsageError(str(e))


class Benchmark:
  """Measures one task after another, logging each number as soon as it exists."""

  def __init__(self, log):
    self.log = log

  def measure(self, key, fn):
    """The logged record for `key`, measuring it with fn() -> dict when there is none."""
    found = self.log.find(**key)
    if found:
      logging.info("reusing %s", key)
      return found
    return self.log.add(dict(key, **fn()))

  def task(self, task):
    config, schedule = task_config(task)
    key = dict(bench="accuracy", dataset=FLAGS.dataset, task=task, schedule=schedule)
    print("== %s (%s, %s): pretraining in %s" % (task, config.architecture, schedule, config.workdir),
          flush=True)
    pretrained = self.measure(dict(key, kind="pretrain"), lambda: pretrain(config))
    self.evaluate(key, "pretrained", pretrained["export"], config)
    if FLAGS.baselines:
      random_config = config.replace(workdir=config.workdir + "-random_init")
      random = self.measure(dict(key, kind="random_init"), lambda: random_init(random_config))
      self.evaluate(key, "random_init", random["export"], random_config)

  def evaluate(self, key, variant, export_dir, config):
    linear_key = dict(key, kind="linear", variant=variant, linear_epochs=FLAGS.linear_epochs)
    workdir = "%s-linear_eval-e%d" % (config.workdir, FLAGS.linear_epochs)
    print("   %s: linear evaluation" % variant, flush=True)
    self.measure(linear_key, lambda: linear(export_dir, workdir, config))
    knn_key = dict(key, kind="knn", variant=variant, k=FLAGS.knn_k, max_bank=FLAGS.knn_max_bank)
    print("   %s: kNN" % variant, flush=True)
    self.measure(knn_key, lambda: knn(export_dir, config))

  def raw_pixels(self):
    from tfssl.tools import experiment
    key = dict(bench="accuracy", dataset=FLAGS.dataset, kind="raw_pixels", k=FLAGS.knn_k,
               protocol="fixed_features")
    print("== raw pixels", flush=True)
    return self.measure(key, lambda: timed(lambda: experiment.raw_pixel_baselines(
        FLAGS.dataset_dir, dataset=FLAGS.dataset, k=FLAGS.knn_k)))


def timed(fn):
  start = time.time()
  out = fn()
  out["seconds"] = time.time() - start
  return out


def pretrain(config):
  from tfssl.tools import experiment
  resumed = bool(os.path.isdir(config.workdir) and
                 any(f.startswith("ckpt-") for f in os.listdir(config.workdir)))
  export_dir, steps, seconds = experiment.pretrain(config)
  # A resumed run's time covers only this call's part of the schedule.
  return {"export": export_dir, "steps": steps, "seconds": seconds, "resumed": resumed,
          "architecture": config.architecture, "filters_factor": config.filters_factor,
          "batch_size": config.batch_size}


def random_init(config):
  from tfssl.tools import experiment
  return {"export": experiment.export_random_init(config)}


def linear(export_dir, workdir, config):
  from tfssl.tools import experiment

  def run():
    metrics = evaluation.linear_eval(export_dir, workdir, config, FLAGS.linear_epochs)
    tap, top1 = experiment.best_tap(metrics)
    return {"end_point": tap, "top1": top1,
            "taps": {k: float(v) for k, v in metrics.items() if k.startswith("top1_accuracy_")}}

  return timed(run)


def knn(export_dir, config):
  def run():
    found = evaluation.knn_of_export(export_dir, config, config.knn_end_point, k=FLAGS.knn_k,
                                     temperature=config.knn_temperature, max_bank=FLAGS.knn_max_bank)
    return {"end_point": config.knn_end_point, "top1": float(found["top1"]),
            "top5": float(found["top5"])}

  return timed(run)


# ---- the table ----
def summary(log, tasks):
  """Rows of the table from the log: one per task, then raw pixels."""
  rows = []
  for task in tasks:
    try:
      _, schedule = task_config(task)
    except ValueError:
      continue
    key = dict(bench="accuracy", dataset=FLAGS.dataset, task=task, schedule=schedule)
    pre = log.find(kind="pretrain", **key)
    if not pre:
      continue

    def get(kind, variant, extra):
      return log.find(kind=kind, variant=variant, **key, **extra)

    lin_extra, knn_extra = dict(linear_epochs=FLAGS.linear_epochs), dict(k=FLAGS.knn_k,
                                                                         max_bank=FLAGS.knn_max_bank)
    changes = overrides(task)
    rows.append({
        "task": task + "".join(" (%s=%s)" % kv for kv in sorted(changes.items())), "network": "%s x%s" % (pre["architecture"], pre["filters_factor"]),
        "steps": pre["steps"], "batch_size": pre.get("batch_size"), "seconds": pre["seconds"],
        "resumed": pre.get("resumed", False), "schedule": schedule,
        "workdir": os.path.dirname(os.path.dirname(pre["export"])),
        "linear": get("linear", "pretrained", lin_extra), "knn": get("knn", "pretrained", knn_extra),
        "random_linear": get("linear", "random_init", lin_extra),
        "random_knn": get("knn", "random_init", knn_extra),
    })
  raw = log.find(bench="accuracy", dataset=FLAGS.dataset, kind="raw_pixels", k=FLAGS.knn_k,
                 protocol="fixed_features")
  return rows, raw


def _top1(record, with_tap=False):
  if not record:
    return "-"
  text = results.percent(record["top1"])
  return "%s (%s)" % (text, record["end_point"]) if with_tap else text


def _tap(record, tap):
  if not record or "top1_accuracy_" + tap not in record.get("taps", {}):
    return "-"
  return results.percent(record["taps"]["top1_accuracy_" + tap])


def gains(row, tap="pre_logits"):
  """Points the representation gains over its random init: best linear, linear at `tap`, kNN."""
  out = []
  pairs = ((row["linear"], row["random_linear"], lambda r: r["top1"]),
           (row["linear"], row["random_linear"], lambda r: r["taps"].get("top1_accuracy_" + tap)),
           (row["knn"], row["random_knn"], lambda r: r["top1"]))
  for trained, random, value in pairs:
    a, b = (value(trained), value(random)) if trained and random else (None, None)
    out.append(None if a is None or b is None else 100.0 * (a - b))
  return out


def _versus(row):
  values = gains(row)
  text = " / ".join("-" if v is None else "%+.2f" % v for v in values)
  return text + (" **not better**" if any(v is not None and v <= 0 for v in values) else "")


def markdown(rows, raw):
  headers = ["task", "network", "steps (batch)", "wall time", "linear top-1 %: best (end point)",
             "linear: pre_logits", "kNN top-1 %", "random init: linear best (end point)",
             "random init: pre_logits", "random init: kNN",
             "gain over random init, points (best / pre_logits / kNN)"]
  body = []
  for row in rows:
    wall = results.clock(row["seconds"]) + (" (resumed)" if row["resumed"] else "")
    body.append([row["task"], row["network"], "%d (%s)" % (row["steps"], row["batch_size"]), wall,
                 _top1(row["linear"], True), _tap(row["linear"], "pre_logits"), _top1(row["knn"]),
                 _top1(row["random_linear"], True), _tap(row["random_linear"], "pre_logits"),
                 _top1(row["random_knn"]), _versus(row)])
  if raw:
    body.append(["raw pixels", "-", "-", "-", results.percent(raw["linear_top1"]) + " (fixed features)",
                 "-", results.percent(raw["knn_top1"]), "-", "-", "-", "-"])
  return results.markdown_table(headers, body)


def write_outputs(log, tasks, info):
  import json
  rows, raw = summary(log, tasks)
  head = ("Accuracy on %s (test split): weighted kNN (k=%d, t=0.1) with %s as the bank, "
          "on the config's --knn_end_point; %d epochs of linear evaluation, one head per end "
          "point, the best named.\n\n"
          "- machine: %s\n- command: `%s`\n- date: %s\n\n" % (
              FLAGS.dataset, FLAGS.knn_k, "the whole train split" if not FLAGS.knn_max_bank else
              "the first %d train examples" % FLAGS.knn_max_bank, FLAGS.linear_epochs,
              results.describe_machine(info), results.command_line(), results.now()))
  results.write_text(FLAGS.output + ".md", head + markdown(rows, raw) + "\n")
  results.write_text(FLAGS.output + ".json", json.dumps(
      {"machine": info, "command": results.command_line(), "date": results.now(), "rows": rows,
       "raw_pixels": raw}, indent=2, sort_keys=True, default=float) + "\n")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
  unknown = [t for t in FLAGS.tasks if t not in TASKS]
  if unknown:
    raise app.UsageError("unknown --tasks %s; known: %s" % (", ".join(unknown), ", ".join(TASKS)))
  info = results.machine()
  log = results.Log(FLAGS.output + ".jsonl", reuse=not FLAGS.remeasure)
  bench = Benchmark(log)
  if FLAGS.baselines:
    bench.raw_pixels()
    write_outputs(log, FLAGS.tasks, info)
  for task in FLAGS.tasks:
    bench.task(task)
    write_outputs(log, FLAGS.tasks, info)
  with open(FLAGS.output + ".md") as f:
    print(f.read())


if __name__ == "__main__":
  from tfssl.runtime.cpu_defaults import apply_cpu_defaults
  apply_cpu_defaults()
  logging.set_verbosity(logging.WARNING)
  app.run(main)
