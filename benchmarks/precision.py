"""Is lower precision worth it here: one config, one seed, trained at each precision side by side.

  python benchmarks/precision.py                       # the demo's SimCLR, fp32 and mixed_bfloat16
  python benchmarks/precision.py --config=flags/byol/fashion_mnist.cfg --train_steps=400
  python benchmarks/precision.py --precisions=fp32,mixed_float16   # on a GPU
  python benchmarks/precision.py --precisions=fp32,auto             # what --precision=auto gives

For each precision: pretrain the flagfile's config (same --random_seed, same data order, same
steps) in its own workdir, read its logged training loss back from the summaries, and score the
export the demo's way (tfssl/tools/experiment.fixed_feature_scores: linear and kNN on `pre_logits`
of the first --eval_train_examples training images, the 10,000 test images). The table gives
seconds and images/s of pretraining, the loss at a few points of the schedule, the largest
difference from the first precision's loss at any logged step, and the two accuracies: "faster at
the same loss curve" is then read off one run on one machine.

benchmarks/throughput.py times the step alone (synthetic batches, every task); this one says
whether the numbers that come out of the faster step are the same.
"""

import json
import os
import sys

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import configs  # noqa: E402
import results  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

flags.DEFINE_string("config", os.path.join(REPO, "flags", "simclr", "fashion_mnist_demo.cfg"),
                    "The flagfile to train at each precision (not --flagfile: absl reads that "
                    "one into this script's own flags).")
flags.DEFINE_list("precisions", ["fp32", "mixed_bfloat16"], "The first is the reference.")
flags.DEFINE_integer("train_steps", None, "Replace the config's length.")
flags.DEFINE_multi_string("set", [], "Override a config flag, `flag=value`.")
flags.DEFINE_string("dataset_dir", "data/fashion_mnist", "The records.")
flags.DEFINE_integer("eval_train_examples", 20000, "Training images for the linear classifier "
                     "and the kNN bank (0: all).")
flags.DEFINE_string("workdir", "workdirs/benchmarks/precision", "Where the runs' workdirs go.")
flags.DEFINE_string("output", "workdirs/benchmarks/precision", "Writes <output>.md, .json, .jsonl.")
flags.DEFINE_bool("remeasure", False, "Ignore measurements already in <output>.jsonl.")
FLAGS = flags.FLAGS

# Points of the schedule whose logged loss the table shows (the nearest logged step).
LOSS_AT = (0.1, 0.25, 0.5, 1.0)


def run_config(precision):
  from tfssl.config import flag_assignments
  overrides = flag_assignments(FLAGS.set)
  overrides.update(precision=precision, dataset_dir=FLAGS.dataset_dir,
                   workdir=os.path.join(FLAGS.workdir, precision))
  if FLAGS.train_steps:
    overrides["train_steps"] = FLAGS.train_steps
  config = configs.config_from_flagfile(FLAGS.config, **overrides)
  # One seed for every precision (the initial weights and the views), 0 where the config has none.
  return config if config.random_seed is not None else config.replace(random_seed=0)


def logged_loss(workdir):
  """{step: loss} of the trainer's logged training loss."""
  from tfssl.tools import visualize
  steps, values = visualize.read_scalars(os.path.join(workdir, "train")).get("loss", ([], []))
  return dict(zip(steps, values))


def measure(precision, log):
  from tfssl.tools import experiment
  config = run_config(precision)
  key = dict(bench="precision", flagfile=os.path.relpath(FLAGS.config, REPO), precision=precision,
             train_steps=config.train_steps, set=sorted(FLAGS.set),
             eval_train_examples=FLAGS.eval_train_examples)
  found = None if FLAGS.remeasure else log.find(**key)
  if found:
    return found
  if FLAGS.remeasure and os.path.isdir(config.workdir):
    import shutil
    shutil.rmtree(config.workdir)
  export_dir, steps, seconds = experiment.pretrain(config)
  if steps != config.train_steps or not seconds:
    raise RuntimeError("%s: the workdir %s already held a finished run; pass --remeasure to time "
                       "it again" % (precision, config.workdir))
  scores = experiment.fixed_feature_scores(export_dir, config, FLAGS.dataset_dir,
                                           max_bank=FLAGS.eval_train_examples or None)
  loss = logged_loss(config.workdir)
  # What --precision=auto chose on this machine (flags.json records the resolved value).
  with open(os.path.join(config.workdir, "flags.json")) as f:
    resolved = json.load(f)["precision"]
  return log.add(dict(key, resolved=resolved, seconds=seconds, images_per_sec=steps * config.batch_size / seconds,
                      network="%s x%d" % (config.architecture, config.filters_factor),
                      loss={str(s): v for s, v in sorted(loss.items())},
                      linear_top1=scores["linear_top1"], knn_top1=scores["knn_top1"],
                      scaling=scores["scaling"]))


def markdown(records, info):
  reference = records[0]
  logged = sorted(reference["loss"], key=int)
  # The logged steps nearest to LOSS_AT's points of the schedule.
  shown = [min(logged, key=lambda s: abs(int(s) - f * reference["train_steps"])) for f in LOSS_AT]
  headers = (["precision", "network", "steps", "pretraining s", "images/s", "speed-up"] +
             ["loss at step %s" % s for s in shown] +
             ["largest loss difference", "linear", "kNN"])
  rows = []
  for r in records:
    shared = sorted(set(r["loss"]) & set(reference["loss"]), key=int)
    gap = max((abs(r["loss"][s] - reference["loss"][s]) for s in shared), default=0.0)
    label = r["precision"] if r.get("resolved", r["precision"]) == r["precision"] else (
        "%s (chose %s)" % (r["precision"], r["resolved"]))
    rows.append([label, r["network"], r["train_steps"], "%.0f" % r["seconds"],
                 "%.1f" % r["images_per_sec"],
                 "%.2fx" % (r["images_per_sec"] / reference["images_per_sec"])] +
                ["%.4f" % r["loss"][s] if s in r["loss"] else "-" for s in shown] +
                ["%.4f (%d logged steps)" % (gap, len(shared)),
                 results.percent(r["linear_top1"]) + "%", results.percent(r["knn_top1"]) + "%"])
  return "\n".join([
      "- machine: %s" % results.describe_machine(info),
      "- command: `%s`" % results.command_line(),
      "- date: %s" % results.now(),
      "",
      results.markdown_table(headers, rows),
      "",
  ])


def main(argv):
  del argv
  from tfssl.runtime.cpu_defaults import apply_cpu_defaults
  apply_cpu_defaults()
  log = results.Log(FLAGS.output + ".jsonl")
  records = [measure(p, log) for p in FLAGS.precisions]
  info = results.machine()
  text = markdown(records, info)
  results.write_text(FLAGS.output + ".md", text)
  results.write_text(FLAGS.output + ".json", json.dumps(
      dict(machine=info, command=results.command_line(), runs=records), indent=1, default=float))
  print(text)


if __name__ == "__main__":
  app.run(main)
