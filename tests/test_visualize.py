"""tfssl.tools.visualize on a tiny rotation workdir trained on real Fashion-MNIST: every picture is
written at its promised pixel size, wrong neighbours are marked, and the batch pictures show what
the tasks see."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tfssl.config import Config
from tfssl.evaluation.knn import nearest_neighbours
from tfssl.tools import visualize
from tfssl.workdir import training_config

pytestmark = pytest.mark.slow

from helpers.configs import ROTATION, tiny_values


@pytest.fixture(scope="module")
def workdir(rotation_run):
  """Four training steps of rotation, summaries every two, and the export of the last step
  (conftest.rotation_run, shared with the console tests)."""
  config, _ = rotation_run
  return config.workdir


def size_of(path):
  with Image.open(path) as image:
    return image.size


def red_pixels(path):
  rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
  return int(((rgb[..., 0] > 200) & (rgb[..., 1] < 60) & (rgb[..., 2] < 60)).sum())


def test_summaries_are_read_from_tensor_events(workdir):
  train = visualize.read_scalars(os.path.join(workdir, "train"))
  steps, losses = train["loss"]
  assert list(steps) == [2, 4]
  assert np.all(np.isfinite(losses)) and np.all(losses > 0)
  assert "learning_rate" in train and "accuracy" in train


def test_learning_curves_png(workdir, tmp_path):
  path = visualize.plot_curves(workdir, str(tmp_path / "curves.png"))
  assert size_of(path) == (1500, 450)


def test_curves_of_a_workdir_without_summaries_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match="no TensorBoard summaries"):
    visualize.plot_curves(str(tmp_path), str(tmp_path / "curves.png"))


def test_retrieval_grid_marks_wrong_class_neighbours(workdir, tmp_path):
  config = training_config(workdir)
  result = visualize.retrieval_grid(workdir, config, str(tmp_path / "retrieval.png"), num_queries=3,
                                    bank_size=300)
  assert result["source"] == os.path.join(workdir, "export", "4")
  assert size_of(result["path"]) == (9 * 110, 3 * 110)
  assert result["shown"] == 3 * 8
  # Grayscale items: the only red is the border of a wrong-class neighbour.
  assert result["wrong"] > 0  # four steps of rotation do not separate ten classes
  assert red_pixels(result["path"]) > 0


def test_retrieval_falls_back_to_the_checkpoint(workdir, tmp_path):
  copy = str(tmp_path / "no_export")
  shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns("export"))
  config = training_config(copy)
  assert config.workdir == copy
  fn, source = visualize.representation_fn(copy, config)
  assert os.path.basename(source) == "ckpt-4"
  images = np.zeros([2, 32, 32, 3], np.float32)
  assert fn(images)["pre_logits"].shape[0] == 2


def test_rotation_batch_shows_the_four_rotations(workdir, tmp_path):
  config = training_config(workdir)
  path = visualize.batch_picture(config, str(tmp_path / "batch.png"), num_images=3)
  assert size_of(path) == (4 * 120, 3 * 120)


def test_jigsaw_batch_shows_each_drawn_permutation(fashion_mnist_dir, tmp_path):
  config = Config.make(task="jigsaw", dataset="fashion_mnist", dataset_dir=fashion_mnist_dir,
                       train_split="train", batch_size=8, resize_size="72", crop_size="66",
                       preprocessing="resize,crop,crop_patches,standardization", splits_per_side=3,
                       patch_jitter=4, perm_subset_size=5, random_seed=0)
  path = visualize.batch_picture(config, str(tmp_path / "batch.png"), num_images=2)
  assert size_of(path) == ((1 + 5) * 120, 2 * 120)


def test_other_tasks_have_no_batch_picture(tmp_path):
  config = Config.make(task="supervised")
  assert visualize.batch_picture(config, str(tmp_path / "batch.png")) is None
  assert not os.path.exists(tmp_path / "batch.png")


def test_tile_grid_puts_tile_perm_k_in_slot_k():
  tiles = np.stack([np.full([2, 2, 1], v, np.float32) for v in range(4)])
  tiles[:, 0, 0, 0] += 0.5  # every tile has its own range, so display scaling keeps it apart
  canvas = visualize._tile_grid(tiles, [3, 0, 2, 1], side=2, gap=1)
  assert canvas.shape == (5, 5, 1)
  # Each tile is scaled to [0, 1] by itself; the gaps are white (1).
  assert canvas[2, 2, 0] == 1.0
  slots = {(0, 0): 3, (0, 3): 0, (3, 0): 2, (3, 3): 1}
  for (r, c), tile in slots.items():
    np.testing.assert_allclose(canvas[r:r + 2, c:c + 2], visualize._for_display(tiles[tile]))
  np.testing.assert_allclose(canvas[0, 0, 0], 1.0)


def test_queries_take_the_classes_in_turn():
  labels = [3, 3, 1, 2, 1, 3, 2]
  picked = visualize.pick_queries(labels, 5)
  assert [labels[i] for i in picked] == [1, 2, 3, 1, 2]
  assert list(picked) == [2, 3, 0, 4, 6]


def test_nearest_neighbours_by_cosine():
  bank = np.array([[1, 0], [0, 1], [10, 1], [-1, 0]], np.float32)
  _, found = nearest_neighbours(bank, np.array([[2, 0]], np.float32), k=3)
  assert list(found[0]) == [0, 2, 1]


def test_command_line_writes_every_picture(workdir, tmp_path, repo_root):
  out = tmp_path / "pictures"
  proc = subprocess.run([sys.executable, "-m", "tfssl.tools.visualize", "--workdir=" + workdir,
                         "--output_dir=" + str(out), "--num_queries=2", "--bank_size=200",
                         "--batch_images=2"], cwd=repo_root, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert size_of(out / "curves.png") == (1500, 450)
  assert size_of(out / "retrieval.png") == (990, 220)
  assert size_of(out / "batch.png") == (480, 240)


def test_benchmark_overview_plots(workdir, tmp_path, repo_root):
  """benchmarks/plots.py draws the RESULTS.md overview from an accuracy.py summary."""
  import json
  linear = {"top1": 0.8, "end_point": "block2", "taps": {"top1_accuracy_pre_logits": 0.7}}
  row = {"task": "rotation", "network": "cifar_resnet18 x1", "workdir": workdir, "linear": linear,
         "knn": {"top1": 0.75}, "random_linear": dict(linear, top1=0.6), "random_knn": {"top1": 0.7}}
  (tmp_path / "acc.json").write_text(json.dumps(
      {"rows": [row], "raw_pixels": {"linear_top1": 0.84, "knn_top1": 0.786}}))
  out = tmp_path / "docs"
  proc = subprocess.run([sys.executable, "benchmarks/plots.py", "--accuracy=%s" % (tmp_path / "acc"),
                         "--output_dir=%s" % out], cwd=repo_root, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert size_of(out / "pretraining_curves.png") == (1500, 320)  # one row of panels
  assert size_of(out / "accuracy.png") == (1500, 500)
  proc = subprocess.run([sys.executable, "benchmarks/plots.py", "--accuracy=%s" % (tmp_path / "acc"),
                         "--output_dir=%s" % out, "--pictures=jigsaw"], cwd=repo_root,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode != 0 and "--pictures=jigsaw: no such task" in proc.stderr


def test_knn_curves_against_pretraining_minutes(tmp_path, fashion_mnist_dir, repo_root):
  """The kNN monitor records the training time that reached each step, a resumed run goes on from
  it, and benchmarks/plots.py draws kNN against minutes from those entries."""
  import json
  from tfssl.trainer import Trainer
  path = str(tmp_path / "monitored")
  monitored = tiny_values(**dict(ROTATION, knn_every_epochs=3e-4,  # every 2 steps
                                 knn_max_train_examples=200,
                                 val_split="val", eval_batch_size=500))  # 6,000 held-out images
  first = Trainer(Config.make(workdir=path, dataset_dir=fashion_mnist_dir, **monitored))
  first.train()
  # Two monitored steps, one traced representation: its bank and query batch sizes, not a trace
  # per call.
  assert first._knn_representation.experimental_get_tracing_count() <= 2
  Trainer(Config.make(workdir=path, dataset_dir=fashion_mnist_dir,
                      **dict(monitored, train_steps=6))).train()  # resumed at step 4
  Trainer(Config.make(workdir=path, dataset_dir=fashion_mnist_dir,
                      **dict(monitored, train_steps=7))).train()  # the last step, off the grid
  with open(os.path.join(path, "eval_results.json")) as f:
    entries = [e for e in json.load(f) if e["kind"] == "knn"]
  assert [e["step"] for e in entries] == [2, 4, 6, 7]
  seconds = [e["train_seconds"] for e in entries]
  assert 0 < seconds[0] < seconds[1] < seconds[2] < seconds[3]
  (tmp_path / "acc.json").write_text(json.dumps({"rows": [], "raw_pixels": {"knn_top1": 0.786}}))
  out = tmp_path / "docs"
  proc = subprocess.run([sys.executable, "benchmarks/plots.py", "--accuracy=%s" % (tmp_path / "acc"),
                         "--output_dir=%s" % out, "--knn_curves=rotation=" + path], cwd=repo_root,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert size_of(out / "knn_curves.png") == (800, 500)
  proc = subprocess.run([sys.executable, "benchmarks/plots.py", "--accuracy=%s" % (tmp_path / "acc"),
                         "--output_dir=%s" % out, "--knn_curves=" + path], cwd=repo_root,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode != 0 and "name=workdir pairs" in proc.stderr


def test_the_kept_knn_curves_redraw_the_results_picture(repo_root, tmp_path):
  """docs/curves holds the monitors' entries behind docs/images/knn_curves.png: they parse as the
  monitor writes them (steps rising, minutes rising) and plots.py draws the picture from them."""
  import json
  curves = repo_root / "docs" / "curves"
  for name in ("swav2400", "byol2400", "simclr400", "simclr1600", "ava400"):
    entries = json.loads((curves / name / "eval_results.json").read_text())
    steps = [e["step"] for e in entries]
    minutes = [e["train_seconds"] for e in entries]
    assert steps == sorted(steps) and minutes == sorted(minutes) and len(steps) >= 3, name
    assert all(e["kind"] == "knn" and 0.5 < e["knn_top1"] < 1.0 for e in entries), name
  proc = subprocess.run(
      [sys.executable, "benchmarks/plots.py", "--accuracy=docs/accuracy",
       "--output_dir=%s" % tmp_path, "--knn_curves=swav=docs/curves/swav2400,"
       "byol=docs/curves/byol2400,simclr=docs/curves/simclr1600,ava=docs/curves/ava400"],
      cwd=repo_root, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert Image.open(tmp_path / "knn_curves.png").size == (800, 500)
