"""The overview pictures of docs/RESULTS.md, from what benchmarks/accuracy.py left behind.

  python benchmarks/plots.py --accuracy=workdirs/benchmarks/accuracy --output_dir=docs

- pretraining_curves.png: every task's training loss and its training accuracy (the pretext
  accuracy, or the online linear probe's `sup_accuracy` for the contrastive methods) against the
  step, one panel per task, read from the summaries of the benchmark's workdirs;
- accuracy.png: linear (best end point and pre_logits) and kNN top-1 of every task beside its
  random initialisation, with raw pixels as lines.
- <task>/curves.png, retrieval.png, batch.png for each task in --pictures: what
  `python -m tfssl.tools.visualize` draws for that task's benchmark workdir.
- knn_curves.png, with --knn_curves=name=workdir,...: kNN top-1 against pretraining minutes for
  runs trained with --knn_every_epochs, read from their eval_results.json (the monitor's entries
  record the training time that reached each step, its own time left out), beside the raw-pixel
  line and each run's random-init kNN from the --accuracy summary where it has them.

  python benchmarks/plots.py --accuracy=A --output_dir=docs/images \
      --knn_curves=simclr=workdirs/curves/simclr,byol=workdirs/curves/byol
"""

import json
import math
import os

from absl import app
from absl import flags

from tfssl.tools import visualize

flags.DEFINE_string("accuracy", "workdirs/benchmarks/accuracy", "benchmarks/accuracy.py's --output.")
flags.DEFINE_string("output_dir", "docs", "Where the PNG files go.")
flags.DEFINE_list("pictures", [], "Tasks whose benchmark workdir also gets tfssl.tools.visualize's "
                  "pictures, in <output_dir>/<task>/.")
flags.DEFINE_list("knn_curves", [], "name=workdir pairs of --knn_every_epochs runs for "
                  "knn_curves.png (kNN against pretraining minutes).")
FLAGS = flags.FLAGS

# The accuracy each task logs in training, in order of preference.
_TRAIN_ACCURACY = ("accuracy", "sup_accuracy", "top1_accuracy_logits")


def pretraining_curves(rows, path):
  plt = visualize._pyplot()  # pylint: disable=protected-access
  columns = 3
  grid = max(1, math.ceil(len(rows) / columns))
  fig = plt.figure(figsize=(5 * columns, 3.2 * grid), dpi=visualize.DPI)
  for i, row in enumerate(rows):
    scalars = visualize.read_scalars(os.path.join(row["workdir"], "train"))
    ax = fig.add_subplot(grid, columns, i + 1)
    if "loss" in scalars:
      ax.plot(*scalars["loss"], color="tab:blue", marker=".", label="loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss", color="tab:blue")
    name = next((n for n in _TRAIN_ACCURACY if n in scalars), None)
    if name:
      twin = ax.twinx()
      twin.plot(*scalars[name], color="tab:orange", marker=".", label=name)
      twin.set_ylabel(name, color="tab:orange")
      twin.set_ylim(0, 1)
    ax.set_title("%s (%s)" % (row["task"], row["network"]))
    ax.grid(alpha=0.3)
  fig.tight_layout()
  return visualize._save(fig, path)  # pylint: disable=protected-access


def accuracy_bars(rows, raw, path):
  import numpy as np
  plt = visualize._pyplot()  # pylint: disable=protected-access
  series = [
      ("linear, best end point", lambda r: (r["linear"] or {}).get("top1"), "tab:blue", None),
      ("linear, pre_logits", lambda r: _tap(r["linear"]), "tab:cyan", None),
      ("kNN", lambda r: (r["knn"] or {}).get("top1"), "tab:green", None),
      ("random init: linear best", lambda r: (r["random_linear"] or {}).get("top1"), "tab:blue", "//"),
      ("random init: pre_logits", lambda r: _tap(r["random_linear"]), "tab:cyan", "//"),
      ("random init: kNN", lambda r: (r["random_knn"] or {}).get("top1"), "tab:green", "//"),
  ]
  fig = plt.figure(figsize=(15, 5), dpi=visualize.DPI)
  ax = fig.add_subplot(1, 1, 1)
  x = np.arange(len(rows))
  width = 0.8 / len(series)
  for i, (label, value, color, hatch) in enumerate(series):
    values = [100 * (value(r) or 0) for r in rows]
    ax.bar(x + (i - len(series) / 2 + 0.5) * width, values, width, label=label, color=color,
           hatch=hatch, alpha=0.5 if hatch else 1.0, edgecolor="black", linewidth=0.3)
  if raw:
    ax.axhline(100 * raw["linear_top1"], color="black", linestyle="--", label="raw pixels: linear")
    ax.axhline(100 * raw["knn_top1"], color="gray", linestyle=":", label="raw pixels: kNN")
  ax.set_xticks(x)
  ax.set_xticklabels([r["task"] for r in rows])
  ax.set_ylabel("test top-1 %")
  ax.set_ylim(0, 100)
  ax.legend(fontsize=8, ncol=4, loc="lower center", bbox_to_anchor=(0.5, 1.0))
  ax.grid(axis="y", alpha=0.3)
  fig.tight_layout()
  return visualize._save(fig, path)  # pylint: disable=protected-access


def monitored_knn(workdir):
  """(minutes, kNN top-1) of the kNN monitor's entries in a workdir, by step; entries written
  before the monitor recorded its training time are left out."""
  path = os.path.join(workdir, "eval_results.json")
  if not os.path.exists(path):
    raise app.UsageError("--knn_curves: %s has no eval_results.json; train it with "
                         "--knn_every_epochs" % workdir)
  with open(path) as f:
    entries = [e for e in json.load(f) if e.get("kind") == "knn" and "train_seconds" in e]
  by_step = {e["step"]: e for e in entries}  # a resumed run may measure a step twice: the last wins
  ordered = [by_step[step] for step in sorted(by_step)]
  return [e["train_seconds"] / 60 for e in ordered], [e["knn_top1"] for e in ordered]


def knn_curves(curves, raw, random_knn, path):
  """kNN top-1 against pretraining minutes, one line per run; dotted: its random init (minute 0);
  dashed: raw pixels."""
  plt = visualize._pyplot()  # pylint: disable=protected-access
  fig = plt.figure(figsize=(8, 5), dpi=visualize.DPI)
  ax = fig.add_subplot(1, 1, 1)
  colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  for i, (name, workdir) in enumerate(curves):
    minutes, top1 = monitored_knn(workdir)
    colour = colours[i % len(colours)]
    start = random_knn.get(name)
    if start is not None:  # the run's own random init is where its curve starts
      minutes, top1 = [0.0] + minutes, [start] + top1
      ax.axhline(100 * start, color=colour, linestyle=":", linewidth=1)
    ax.plot(minutes, [100 * v for v in top1], color=colour, marker=".", label=name)
  if raw:
    ax.axhline(100 * raw["knn_top1"], color="black", linestyle="--", label="raw pixels")
  ax.set_xlabel("pretraining minutes (the run's own training time, its kNN monitor left out)")
  ax.set_ylabel("kNN top-1 % (test)")
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  return visualize._save(fig, path)  # pylint: disable=protected-access


def _tap(record, tap="pre_logits"):
  return (record or {}).get("taps", {}).get("top1_accuracy_" + tap)


def main(argv):
  del argv
  with open(FLAGS.accuracy + ".json") as f:
    summary = json.load(f)
  rows = summary["rows"]
  if rows:  # a summary of the baselines alone still gives the kNN curves their lines
    print(pretraining_curves(rows, os.path.join(FLAGS.output_dir, "pretraining_curves.png")))
    print(accuracy_bars(rows, summary.get("raw_pixels"), os.path.join(FLAGS.output_dir,
                                                                         "accuracy.png")))
  by_task = {row["task"].split(" ")[0]: row for row in rows}
  if FLAGS.knn_curves:
    pairs = [item.split("=", 1) for item in FLAGS.knn_curves]
    if any(len(pair) != 2 for pair in pairs):
      raise app.UsageError("--knn_curves takes name=workdir pairs, e.g. simclr=workdirs/simclr")
    random_knn = {task: (row.get("random_knn") or {}).get("top1") for task, row in by_task.items()}
    print(knn_curves(pairs, summary.get("raw_pixels"), random_knn,
                     os.path.join(FLAGS.output_dir, "knn_curves.png")))
  for task in FLAGS.pictures:
    if task not in by_task:
      raise app.UsageError("--pictures=%s: no such task in %s.json" % (task, FLAGS.accuracy))
    written = visualize.draw_all(by_task[task]["workdir"], os.path.join(FLAGS.output_dir, task))
    for path in written.values():
      print(path)


if __name__ == "__main__":
  app.run(main)
