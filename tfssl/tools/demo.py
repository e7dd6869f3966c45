"""`make demo`: learn a representation from real Fashion-MNIST on a laptop CPU in minutes.

1. pretrains the task's demo config (flags/<task>/fashion_mnist_demo.cfg when there is one, else
   flags/<task>/fashion_mnist.cfg) without labels, with the trainer's progress lines, and exports it;
2. exports the same network at random initialisation;
3. evaluates both, and raw pixels, by one protocol on the test set (evaluation/fixed_features.py):
   a linear classifier and the weighted kNN (k=200) on fixed features, `pre_logits` (the network's
   pooled output, what a user takes from an export) or the 784 pixels;
4. with --best_end_point, also a 2-epoch linear evaluation over every end point (linear_eval), to
   name the best one where it is not pre_logits (a few minutes more);
5. prints one row per representation.

The demo resumes: run it again and it continues from its workdir.
"""

import collections
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging

# SimCLR: of the methods measured, the clearest win within the demo's minutes; its demo config is
# above the random network and raw pixels in both columns (docs/RESULTS.md, "The demo").
flags.DEFINE_string("task", "simclr", "Which task to pretrain (its fashion_mnist demo config).")
flags.DEFINE_string("dataset_dir", "data/fashion_mnist", "Fashion-MNIST TFRecords (make data).")
flags.DEFINE_string("workdir", "workdirs/demo", "Where the demo's runs go.")
flags.DEFINE_integer("pretrain_steps", None, "Override the config's length (--train_steps).")
flags.DEFINE_multi_string("set", [], "Override a flag of the demo config, `flag=value` (repeat "
                          "it for more; `task:flag=value` for one --task only), e.g. --set=lr=6e-3: "
                          "how the config's trials were run.")
flags.DEFINE_integer("eval_train_examples", 20000, "Training images the linear classifiers and the "
                     "kNN bank use, the first of the train split (0: all 54,000); fewer keep the "
                     "demo in its minutes, the same for every row.")
flags.DEFINE_bool("best_end_point", False, "Also run a linear evaluation over every end point "
                  "(about two minutes per representation on 2 cores) to name the best one.")
flags.DEFINE_integer("linear_epochs", 2, "Epochs of that linear evaluation over every end point.")
FLAGS = flags.FLAGS

# The default task's whole run on 2 cores (docs/RESULTS.md, "The demo"): 5.0 min measured on a
# Zen 5 EPYC (AVX-512); on the AVX2 EPYC, where the previous config of half this cost took 5.6 min,
# about 11-12 (an estimate from that ratio, not a run); the same VMs have run 1.4x slower in other
# hours.
MINUTES_ON_TWO_CORES = "5-12"


def usage_exit(message):
  """One line and exit status 2, the README's code for a usage error."""
  sys.stderr.write("tfssl demo: error: %s\n" % message)
  sys.exit(2)


def demo_flagfile(experiment, task):
  """The task's demo config where it has one (sized to the demo's minutes), else its
  fashion_mnist config."""
  path = experiment.flagfile_path(task, "fashion_mnist_demo")
  return path if os.path.exists(path) else experiment.flagfile_path(task, "fashion_mnist")


# One printed row: its name, fixed_features.evaluate's scores, (end point, top-1) or None.
Row = collections.namedtuple("Row", "name scores best")


def best_end_point(experiment, export_dir, workdir, eval_chain, eval_flags):
  """(end point, top-1) of the best head of a short linear evaluation over every end point."""
  metrics = experiment.linear_eval(export_dir, workdir, FLAGS.dataset_dir, eval_chain,
                                   epochs=FLAGS.linear_epochs, **eval_flags)
  return experiment.best_tap(metrics)


def print_table(rows, last_line):
  from tfssl.evaluation import fixed_features
  print()
  print("Fashion-MNIST test accuracy, 10 classes, the same protocol for every row:")
  print("  linear: %s;" % fixed_features.PROTOCOL)
  print("  kNN: k=200, cosine similarity, votes weighted exp(sim/0.1), the training images as the "
        "bank;")
  print("  training images: %s of the train split; test: its 10,000 test images." % (
      "the first %d" % FLAGS.eval_train_examples if FLAGS.eval_train_examples else "all"))
  print("  features: pre_logits (the network's pooled output) or the 784 pixels in [0, 1].")
  print()
  best_header = "best end point (%d-epoch linear_eval)" % FLAGS.linear_epochs if any(
      r.best for r in rows) else ""
  print("%-46s %8s %8s  %-12s  %s" % ("representation", "linear", "kNN", "features",
                                       best_header))
  for row in rows:
    best = ""
    if row.best and row.best[0] != "pre_logits":
      best = "%.2f%% at %s" % (100 * row.best[1], row.best[0])
    print("%-46s %7.2f%% %7.2f%%  %-12s  %s" % (row.name, 100 * row.scores["linear_top1"],
                                                100 * row.scores["knn_top1"],
                                                row.scores["scaling"], best))
  print()
  print(last_line)


def main(argv):
  del argv
  from tfssl.config import flag_assignments
  from tfssl.tools import experiment
  task = FLAGS.task
  workdir = FLAGS.workdir.rstrip("/")
  try:
    overrides = flag_assignments(FLAGS.set, scope=task)
  except ValueError as e:
    usage_exit(str(e))
  overrides.update(workdir="%s/%s" % (workdir, task), dataset_dir=FLAGS.dataset_dir)
  if FLAGS.pretrain_steps is not None:
    overrides["train_steps"] = FLAGS.pretrain_steps
  try:
    config = experiment.config_from_flagfile(demo_flagfile(experiment, task), **overrides)
  except flags.Error as e:  # an unknown flag or a bad value in --set
    usage_exit("--set: %s" % e)
  eval_chain, eval_flags = experiment.eval_view(config)
  begin = time.time()
  extra = " (and a few minutes for --best_end_point)" if FLAGS.best_end_point else ""
  print("tfssl demo: about %s minutes on a 2-core CPU%s: pretrain %s (%s, %d steps) on "
        "Fashion-MNIST without its labels, then evaluate it beside the same network at random "
        "initialisation and raw pixels." % (MINUTES_ON_TWO_CORES, extra, task, config.architecture,
                                            config.train_steps), flush=True)
  export_dir, steps, seconds = experiment.pretrain(config)

  random_config = config.replace(workdir="%s/%s_random_init" % (workdir, task))
  random_dir = os.path.join(random_config.workdir, "export", "0")
  if not os.path.isdir(random_dir):
    random_dir = experiment.export_random_init(random_config)

  rows = []
  for name, export, suffix in (
      ("%s, %d steps (%.0fs pretraining this run)" % (task, steps, seconds), export_dir, ""),
      ("the same network, random initialisation", random_dir, "_random_init")):
    print("tfssl demo: evaluating %s ..." % name, flush=True)
    scores = experiment.fixed_feature_scores(export, config, FLAGS.dataset_dir,
                                             max_bank=FLAGS.eval_train_examples or None)
    best = None
    if FLAGS.best_end_point:
      best = best_end_point(experiment, export, "%s/%s%s_linear_eval" % (workdir, task, suffix),
                            eval_chain, eval_flags)
    rows.append(Row(name, scores, best))
  print("tfssl demo: raw pixels ...", flush=True)
  rows.append(Row("raw pixels (784 values in [0, 1])", experiment.raw_pixel_baselines(
      FLAGS.dataset_dir, max_train=FLAGS.eval_train_examples or None), None))
  print_table(rows, "took %.0fs in all; workdir %s (TensorBoard: tensorboard --logdir %s)" % (
      time.time() - begin, workdir, workdir))
  sys.stdout.flush()


def run():
  from tfssl.runtime.console import quiet_tensorflow_banner, use_short_log_lines
  quiet_tensorflow_banner()
  # The trainer's progress lines (steps, loss, images/s, ETA) are the demo's progress.
  logging.set_verbosity(logging.INFO)
  use_short_log_lines()
  app.run(main)


if __name__ == "__main__":
  from tfssl.runtime.cpu_defaults import apply_cpu_defaults
  apply_cpu_defaults()
  run()
