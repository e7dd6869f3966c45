"""The overview pictures of docs/RESULTS.md, from what benchmarks/accuracy.py left behind.

  python benchmarks/plots.py --accuracy=workdirs/benchmarks/accuracy --output_dir=docs

- pretraining_curves.png: every task's training loss and its training accuracy (the pretext
  accuracy, or the online linear probe's `sup_accuracy` for the contrastive methods) against the
  step, one panel per task, read from the summaries of the benchmark's workdirs;
- accuracy.png: linear (best end point and pre_logits) and kNN top-1 of every task beside its
  random initialisation, with raw pixels as lines.
- <task>/curves.png, retrieval.png, batch.png for each task in --pictures: what
  `python -m tfssl.tools.visualize` draws for that task's benchmark workdir.
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


def _tap(record, tap="pre_logits"):
  return (record or {}).get("taps", {}).get("top1_accuracy_" + tap)


def main(argv):
  del argv
  with open(FLAGS.accuracy + ".json") as f:
    summary = json.load(f)
  rows = summary["rows"]
  print(pretraining_curves(rows, os.path.join(FLAGS.output_dir, "pretraining_curves.png")))
  print(accuracy_bars(rows, summary.get("raw_pixels"), os.path.join(FLAGS.output_dir,
                                                                       "accuracy.png")))
  by_task = {row["task"].split(" ")[0]: row for row in rows}
  for task in FLAGS.pictures:
    if task not in by_task:
      raise app.UsageError("--pictures=%s: no such task in %s.json" % (task, FLAGS.accuracy))
    written = visualize.draw_all(by_task[task]["workdir"], os.path.join(FLAGS.output_dir, task))
    for path in written.values():
      print(path)


if __name__ == "__main__":
  app.run(main)
