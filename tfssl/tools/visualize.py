"""Pictures of a workdir: `python -m tfssl.tools.visualize --workdir=W [--output_dir=W/pictures]`.

- curves.png: loss, learning rate and accuracies (train accuracy, eval top-1, kNN top-1) against
  the step, read from the TensorBoard summaries in W/train and W/eval.
- retrieval.png: test-split queries (one class after another) and their 8 nearest train-split
  neighbours by cosine similarity of the learned representation (the newest W/export/<step>, else
  the newest checkpoint); a neighbour of another class has a red border.
- batch.png (rotation and jigsaw): one training batch as the model sees it, built from W/flags.json
  and the data pipeline: each image's four rotations with their labels, or each image's tiles in
  grid order and then in the order of every permutation drawn for the batch, titled with its label.

Every picture has a fixed pixel size (the *_size functions), so it can be put in documents as is.
"""

import os

import numpy as np

DPI = 100
CURVES_PX = (1500, 450)  # width, height
RETRIEVAL_CELL_PX = 110
BATCH_CELL_PX = 120
NUM_NEIGHBOURS = 8
QUERY_POOL = 1000  # queries are picked among the first test images, one class after another


def curves_size():
  return CURVES_PX


def retrieval_size(num_queries):
  return ((1 + NUM_NEIGHBOURS) * RETRIEVAL_CELL_PX, num_queries * RETRIEVAL_CELL_PX)


def batch_size_px(task, num_images, perm_subset_size=None):
  columns = 4 if task == "rotation" else 1 + perm_subset_size
  return (columns * BATCH_CELL_PX, num_images * BATCH_CELL_PX)


def _pyplot():
  import matplotlib
  matplotlib.use("Agg")  # files only; no display needed
  import matplotlib.pyplot as plt
  return plt


def _figure(size_px):
  plt = _pyplot()
  return plt.figure(figsize=(size_px[0] / DPI, size_px[1] / DPI), dpi=DPI)


def _save(fig, path):
  # No bbox_inches="tight": it would change the pixel size promised above.
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=DPI)
  _pyplot().close(fig)
  return path


# ---- learning curves ----
def read_scalars(logdir):
  """{tag: (steps, values)} of every scalar in one summary folder ({} when it has none).

  tf.summary.scalar writes tensor summaries, older writers scalar ones; both are read.
  """
  from tensorboard.backend.event_processing import event_accumulator as ea
  if not os.path.isdir(logdir):
    return {}
  acc = ea.EventAccumulator(logdir, size_guidance={ea.TENSORS: 0, ea.SCALARS: 0})
  acc.Reload()
  out = {}
  tags = acc.Tags()
  for tag in tags.get(ea.TENSORS, []):
    events = acc.Tensors(tag)
    values = [float(np.asarray(_tensor_value(e.tensor_proto)).reshape(-1)[0]) for e in events]
    out[tag] = [e.step for e in events], values
  for tag in tags.get(ea.SCALARS, []):
    events = acc.Scalars(tag)
    out[tag] = [e.step for e in events], [e.value for e in events]
  # A resumed run writes a second event file; keep the newest value of each step, in step order.
  return {tag: _by_step(steps, values) for tag, (steps, values) in out.items()}


def _tensor_value(proto):
  from tensorboard.util import tensor_util
  return tensor_util.make_ndarray(proto)


def _by_step(steps, values):
  latest = dict(zip(steps, values))
  order = sorted(latest)
  return np.asarray(order), np.asarray([latest[s] for s in order])


def _is_accuracy(tag):
  name = tag.lower()
  return ("accuracy" in name or "top1" in name) and "top5" not in name


def plot_curves(workdir, path):
  """curves.png of the workdir's summaries; ValueError when it has none."""
  runs = {run: read_scalars(os.path.join(workdir, run)) for run in ("train", "eval")}
  if not any(runs.values()):
    raise ValueError("%s has no TensorBoard summaries in train/ or eval/: train there first" % workdir)
  fig = _figure(CURVES_PX)
  panels = [("loss", lambda t: t == "loss"), ("learning rate", lambda t: t == "learning_rate"),
            ("accuracy", _is_accuracy)]
  for i, (title, wanted) in enumerate(panels):
    ax = fig.add_subplot(1, len(panels), i + 1)
    drawn = 0
    for run, scalars in runs.items():
      for tag in sorted(scalars):
        if wanted(tag):
          steps, values = scalars[tag]
          ax.plot(steps, values, marker="o" if len(steps) < 3 else None, markersize=3,
                  label="%s %s" % (run, tag))
          drawn += 1
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    if drawn:
      ax.legend(fontsize=7)
    else:
      ax.text(0.5, 0.5, "no %s summaries" % title, ha="center", va="center", transform=ax.transAxes)
  fig.suptitle(os.path.basename(os.path.normpath(workdir)))
  fig.subplots_adjust(left=0.05, right=0.98, bottom=0.13, top=0.85, wspace=0.22)
  return _save(fig, path)


# ---- the representation of a workdir ----
def representation_fn(workdir, config):
  """(images -> end points dict, where it came from): the newest export, else the newest checkpoint
  (tfssl.models.representation); patch models' tiles are combined per image."""
  import tensorflow as tf
  from tfssl.evaluation import linear_probe
  from tfssl.models import representation as representation_lib
  export_dir = representation_lib.newest_export(workdir)
  if export_dir:
    rep = representation_lib.from_export(export_dir)
  else:
    from tfssl.trainer import Trainer
    rep = Trainer(config).restored_representation()

  @tf.function
  def fn(images):
    if images.shape.rank == 5:  # patch models: per-tile features combined per image
      return linear_probe.patch_taps(rep.fn, images, config.pool_mode, config.combine_patches)
    return rep.fn(images)

  return fn, rep.source


# ---- nearest-neighbour retrieval ----
def _eval_batches(config, split, chain, limit):
  from tfssl.data import datasets
  ds = datasets.make_input_fn(config, split, False, batch_size=256, preprocessing=chain)(None)
  return ds.unbatch().take(limit).batch(256)


def _raw_images(config, split, indices):
  """{index: uint8 image} of the split's examples at `indices`, read in the pipeline's order."""
  from tfssl.data import datasets
  spec = datasets.get_dataset(config.dataset, config.dataset_dir)
  wanted, out = set(int(i) for i in indices), {}
  examples = spec.read(split, is_training=False).take(max(wanted) + 1)
  for i, example in enumerate(examples.as_numpy_iterator()):
    if i in wanted:
      out[i] = example["image"]
  return out


def pick_queries(labels, num_queries):
  """Indices of `num_queries` examples taking the classes in turn (first unused example of each)."""
  by_class = {}
  for i, label in enumerate(labels):
    by_class.setdefault(int(label), []).append(i)
  picked, round_ = [], 0
  while len(picked) < min(num_queries, len(labels)):
    for label in sorted(by_class):
      if round_ < len(by_class[label]) and len(picked) < num_queries:
        picked.append(by_class[label][round_])
    round_ += 1
  return np.asarray(picked)


def retrieval_grid(workdir, config, path, num_queries=8, bank_size=10000, end_point=None,
                   rep=None):
  """retrieval.png; returns {"path", "source", "wrong": neighbours of another class, "shown"}."""
  from tfssl.data import datasets
  from tfssl.evaluation import knn
  end_point = end_point or config.knn_end_point
  chain = config.knn_preprocessing or config.preprocessing
  fn, source = rep or representation_fn(workdir, config)
  bank, bank_labels = knn.extract_features(fn, _eval_batches(config, "train", chain, bank_size),
                                           end_point)
  pool, pool_labels = knn.extract_features(fn, _eval_batches(config, "test", chain, QUERY_POOL),
                                           end_point)
  queries = pick_queries(pool_labels, num_queries)
  _, neighbours = knn.nearest_neighbours(bank, pool[queries], NUM_NEIGHBOURS)
  query_images = _raw_images(config, "test", queries)
  bank_images = _raw_images(config, "train", neighbours.reshape(-1))
  classes = getattr(datasets.get_dataset(config.dataset, config.dataset_dir), "classes", None)
  name = lambda label: classes[label] if classes else str(label)  # noqa: E731

  fig = _figure(retrieval_size(len(queries)))
  columns = 1 + NUM_NEIGHBOURS
  wrong = 0
  for row, (q, found) in enumerate(zip(queries, neighbours)):
    ax = fig.add_subplot(len(queries), columns, row * columns + 1)
    _show(ax, query_images[q], "query: %s" % name(pool_labels[q]), edge="black", width=2)
    for col, n in enumerate(found):
      same = bank_labels[n] == pool_labels[q]
      wrong += int(not same)
      ax = fig.add_subplot(len(queries), columns, row * columns + 2 + col)
      _show(ax, bank_images[n], None if same else name(bank_labels[n]),
            edge="lightgray" if same else "red", width=1 if same else 4)
  fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.97, wspace=0.08, hspace=0.25)
  _save(fig, path)
  return {"path": path, "source": source, "wrong": wrong, "shown": neighbours.size}


def _show(ax, image, title, edge, width):
  image = np.asarray(image)
  ax.imshow(_for_display(image), cmap="gray" if image.shape[-1] == 1 else None)
  ax.set_xticks([])
  ax.set_yticks([])
  for spine in ax.spines.values():
    spine.set_edgecolor(edge)
    spine.set_linewidth(width)
  if title:
    ax.set_title(title, fontsize=7, pad=2)


def _for_display(image):
  """Any image (uint8, [-1, 1], standardized) -> float [0, 1] by its own range."""
  image = np.asarray(image, np.float32)
  low, high = float(image.min()), float(image.max())
  return (image - low) / (high - low) if high > low else np.zeros_like(image)


# ---- one training batch as the model sees it ----
def batch_picture(config, path, num_images=4):
  """batch.png for rotation and jigsaw; returns the path, or None for other tasks."""
  if config.task not in ("rotation", "jigsaw"):
    return None
  from tfssl.data import datasets
  batch = next(iter(datasets.make_input_fn(config, config.train_split, True,
                                           batch_size=num_images)(None)))
  images = batch["image"].numpy()
  if config.task == "rotation":
    return _rotation_batch(images, batch["label"].numpy(), path)
  return _jigsaw_batch(config, images, path)


def _rotation_batch(images, labels, path):
  fig = _figure(batch_size_px("rotation", len(images)))
  for b in range(len(images)):
    for r in range(images.shape[1]):
      ax = fig.add_subplot(len(images), images.shape[1], b * images.shape[1] + r + 1)
      _show(ax, images[b, r], "label %d (%d deg)" % (labels[b, r], 90 * labels[b, r]),
            edge="black", width=1)
  fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.95, wspace=0.08, hspace=0.3)
  return _save(fig, path)


def _jigsaw_batch(config, images, path):
  from tfssl.tasks import jigsaw
  from tfssl.tasks import permutations
  perms = permutations.load(config.permutations_file)
  # One subset of the set per batch, shared by its images, as the task draws it in training.
  ids = jigsaw.random_subset(len(perms), config.perm_subset_size).numpy()
  side = config.splits_per_side
  columns = 1 + len(ids)
  fig = _figure(batch_size_px("jigsaw", len(images), len(ids)))
  for b, tiles in enumerate(images):
    ax = fig.add_subplot(len(images), columns, b * columns + 1)
    _show(ax, _tile_grid(tiles, np.arange(len(tiles)), side), "tiles in grid order", "black", 1)
    for k, perm_id in enumerate(ids):
      ax = fig.add_subplot(len(images), columns, b * columns + 2 + k)
      # Slot k of the row holds tile perm[k] (tfssl/tasks/jigsaw.py); the label is the index.
      _show(ax, _tile_grid(tiles, perms[perm_id], side), "label %d" % perm_id, "black", 1)
  fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.95, wspace=0.08, hspace=0.3)
  return _save(fig, path)


def _tile_grid(tiles, order, side, gap=2):
  """The tiles in `order` laid out row-major on a side x side grid with white gaps, in [0, 1]."""
  h, w, c = tiles.shape[1:]
  canvas = np.ones((side * h + (side - 1) * gap, side * w + (side - 1) * gap, c), np.float32)
  for slot, tile in enumerate(order):
    r, col = divmod(slot, side)
    canvas[r * (h + gap):r * (h + gap) + h, col * (w + gap):col * (w + gap) + w] = _for_display(
        tiles[tile])
  return canvas


# ---- the command line ----
def define_flags(flag_values=None):
  """The tool's flags, defined on demand so that importing this module clashes with no other tool."""
  from absl import flags
  fv = flag_values if flag_values is not None else flags.FLAGS
  if "num_queries" in fv:
    return fv
  flags.DEFINE_string("workdir", None, "The training workdir to draw.", flag_values=fv)
  flags.DEFINE_string("output_dir", None, "Where the PNG files go (default: <workdir>/pictures).",
                      flag_values=fv)
  flags.DEFINE_integer("num_queries", 8, "Test images in the retrieval grid.", flag_values=fv)
  flags.DEFINE_integer("bank_size", 10000, "Train images searched for neighbours (the first ones).",
                       flag_values=fv)
  flags.DEFINE_string("end_point", None, "End point of the representation used for retrieval "
                      "(default: the run's --knn_end_point).", flag_values=fv)
  flags.DEFINE_string("dataset_dir", None, "Override the run's --dataset_dir (records moved).",
                      flag_values=fv)
  flags.DEFINE_integer("batch_images", 4, "Images in the training-batch picture.", flag_values=fv)
  return fv


def draw_all(workdir, output_dir=None, num_queries=8, bank_size=10000, end_point=None,
             dataset_dir=None, batch_images=4):
  """Every picture the workdir allows; returns {name: path}."""
  output_dir = output_dir or os.path.join(workdir, "pictures")
  written = {"curves": plot_curves(workdir, os.path.join(output_dir, "curves.png"))}
  from tfssl.workdir import training_config
  config = training_config(workdir, dataset_dir=dataset_dir)
  if config.task != "knn_eval":
    result = retrieval_grid(workdir, config, os.path.join(output_dir, "retrieval.png"), num_queries,
                            bank_size, end_point)
    written["retrieval"] = result["path"]
  batch = batch_picture(config, os.path.join(output_dir, "batch.png"), batch_images)
  if batch:
    written["batch"] = batch
  return written


def main(argv):
  from absl import app
  from absl import flags
  fv = flags.FLAGS
  if len(argv) > 1:
    raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
  if not fv.workdir:
    raise app.UsageError("--workdir is required: the training workdir to draw")
  try:
    written = draw_all(fv.workdir, fv.output_dir, fv.num_queries, fv.bank_size, fv.end_point,
                       fv.dataset_dir, fv.batch_images)
  except ValueError as e:
    raise SystemExit("tfssl-visualize: error: %s" % e)
  for name, path in written.items():
    print("%-10s %s" % (name, path))


def run():
  from tfssl.runtime.console import quiet_tensorflow_banner
  quiet_tensorflow_banner()
  from absl import app
  from tfssl.runtime.cpu_defaults import apply_cpu_defaults
  apply_cpu_defaults()
  define_flags()
  app.run(main)


if __name__ == "__main__":
  run()
