"""`make demo`: learn a representation from real Fashion-MNIST on a laptop CPU in minutes.

1. pretrains the task's fashion_mnist config (flags/<task>/fashion_mnist.cfg) without labels,
2. exports it, as `--run_eval` would,
3. trains linear heads on the frozen representation (linear_eval), and kNN (k=200) on it,
4. prints a table beside the same two classifiers on raw pixels.

The demo resumes: run it again and it continues from its workdir.
"""

import sys
import time

from absl import app
from absl import flags
from absl import logging

flags.DEFINE_string("task", "rotation", "Which task's fashion_mnist config to pretrain.")
flags.DEFINE_string("dataset_dir", "data/fashion_mnist", "Fashion-MNIST TFRecords (make data).")
flags.DEFINE_string("workdir", "workdirs/demo", "Where the demo's runs go.")
flags.DEFINE_integer("pretrain_steps", None, "Override the config's length (--train_steps).")
flags.DEFINE_integer("linear_epochs", 2, "Epochs of linear evaluation.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  from tfssl.tools import experiment
  task = FLAGS.task
  workdir = FLAGS.workdir.rstrip("/")
  overrides = dict(workdir="%s/%s" % (workdir, task), dataset_dir=FLAGS.dataset_dir,
                   train_steps=FLAGS.pretrain_steps)
  config = experiment.config_from_flagfile(experiment.flagfile_path(task, "fashion_mnist"), **overrides)
  eval_chain, eval_flags = experiment.eval_view(config)
  print("tfssl demo: pretraining %s (%s) on Fashion-MNIST, labels unused..." % (task, config.architecture),
        flush=True)
  export_dir, steps, seconds = experiment.pretrain(config)
  print("tfssl demo: linear evaluation of %s ..." % export_dir, flush=True)
  start = time.time()
  metrics = experiment.linear_eval(export_dir, "%s/%s_linear_eval" % (workdir, task), FLAGS.dataset_dir,
                                   eval_chain, epochs=FLAGS.linear_epochs, **eval_flags)
  tap, linear_top1 = experiment.best_tap(metrics)
  knn_flags = {k: v for k, v in eval_flags.items() if k != "combine_patches"}
  knn = experiment.knn_of_export(export_dir, FLAGS.dataset_dir, eval_chain, end_point=tap,
                                 combine=config.combine_patches, **knn_flags)
  eval_seconds = time.time() - start
  print("tfssl demo: raw-pixel baselines ...", flush=True)
  pixels = experiment.raw_pixel_baselines(FLAGS.dataset_dir)

  rows = [
      ("%s (%s), %d steps, %.0fs pretraining" % (task, config.architecture, steps, seconds),
       linear_top1, knn["top1"], "end point " + tap),
      ("raw pixels (784 values)", pixels["linear_top1"], pixels["knn_top1"], ""),
  ]
  print()
  print("Fashion-MNIST test accuracy (10 classes; linear: %d epochs of linear evaluation, kNN: k=200)"
        % FLAGS.linear_epochs)
  print("%-60s %10s %10s  %s" % ("representation", "linear", "kNN", ""))
  for name, lin, kn, note in rows:
    print("%-60s %9.2f%% %9.2f%%  %s" % (name, 100 * lin, 100 * kn, note))
  print("\nevaluation took %.0fs; workdir %s (TensorBoard: tensorboard --logdir %s)" % (
      eval_seconds, workdir, workdir))
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
