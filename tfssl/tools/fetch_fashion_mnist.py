"""Gets Fashion-MNIST and converts it to TFRecords (what `make data` runs).

  python -m tfssl.tools.fetch_fashion_mnist --output_dir=data/fashion_mnist

The IDX files come from, in order: --idx_dir; Debian's dataset-fashion-mnist package (installed with
apt-get when we are root on Debian); tensorflow_datasets' download, written out as IDX files. A
rerun keeps the shards that are already complete.
"""

import os
import shutil
import subprocess
import sys

from absl import app, flags

from tfssl.tools import idx_files, image_sources, tfrecord_builder

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
DEBIAN_PACKAGE = "dataset-fashion-mnist"
IDX_NAMES = {("train", "images"): "train-images-idx3-ubyte.gz",
             ("train", "labels"): "train-labels-idx1-ubyte.gz",
             ("test", "images"): "t10k-images-idx3-ubyte.gz",
             ("test", "labels"): "t10k-labels-idx1-ubyte.gz"}



def define_flags(flag_values=None):
  """Defines the tool's flags (on absl's global FLAGS unless given others)."""
  fv = flag_values if flag_values is not None else flags.FLAGS
  if "idx_dir" in fv:
    return fv
  flags.DEFINE_string("output_dir", None, "Where the TFRecords and dataset_info.json go.",
                      flag_values=fv)
  flags.DEFINE_string("idx_dir", None, "A folder already holding the four Fashion-MNIST IDX files "
                      "(default: Debian's, else a download).", flag_values=fv)
  flags.DEFINE_integer("train_shards", 10, "Train shards (60,000 images).", flag_values=fv)
  flags.DEFINE_integer("validation_shards", 2, "Validation shards (the 10,000 test images).",
                       flag_values=fv)
  flags.DEFINE_integer("num_workers", min(2, os.cpu_count() or 1), "Processes writing shards.",
                       flag_values=fv)
  return fv


class FetchError(RuntimeError):
  pass


def has_idx(folder):
  return bool(folder) and all(os.path.isfile(os.path.join(folder, name))
                              for name in IDX_NAMES.values())


def _apt_install(log):
  if not os.path.isfile("/etc/debian_version") or not shutil.which("apt-get"):
    raise FetchError("not a Debian system with apt-get")
  if os.geteuid() != 0:
    raise FetchError(f"not root, so cannot apt-get install {DEBIAN_PACKAGE}")
  log.write(f"fetch_fashion_mnist: apt-get install {DEBIAN_PACKAGE}\n")
  env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
  for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", DEBIAN_PACKAGE]):
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
      last = (done.stderr.strip().splitlines() or ["exit code %d" % done.returncode])[-1]
      raise FetchError(f"`{' '.join(command)}` failed: {last}")
  if not has_idx(DEBIAN_DIR):
    raise FetchError(f"{DEBIAN_PACKAGE} installed but {DEBIAN_DIR} lacks the IDX files")
  return DEBIAN_DIR


def _tfds_download(target, log):
  try:
    import tensorflow_datasets as tfds
  except ImportError as e:
    raise FetchError(f"tensorflow_datasets is not installed ({e})") from e
  log.write("fetch_fashion_mnist: downloading through tensorflow_datasets\n")
  os.makedirs(target, exist_ok=True)
  try:
    data = tfds.as_numpy(tfds.load("fashion_mnist", batch_size=-1, as_supervised=True,
                                   data_dir=os.path.join(target, "tfds")))
  except Exception as e:  # tfds raises many kinds (network, checksum, disk); all mean "no data"
    raise FetchError(f"tensorflow_datasets download failed: {str(e).splitlines()[0]}") from e
  for split in ("train", "test"):
    images, labels = data[split]
    idx_files.write_idx(os.path.join(target, IDX_NAMES[(split, "images")]), images[..., 0])
    idx_files.write_idx(os.path.join(target, IDX_NAMES[(split, "labels")]), labels.astype("uint8"))
  shutil.rmtree(os.path.join(target, "tfds"), ignore_errors=True)
  return target


def find_idx_dir(output_dir, idx_dir=None, log=None):
  """A folder with the four IDX files, fetching them if need be; FetchError says what was tried."""
  log = log or sys.stderr
  if idx_dir:
    if not has_idx(idx_dir):
      raise FetchError(f"--idx_dir={idx_dir} lacks some of {', '.join(IDX_NAMES.values())}")
    return idx_dir
  if has_idx(DEBIAN_DIR):
    return DEBIAN_DIR
  # A download from an earlier run, kept hidden beside the shards.
  downloaded = os.path.join(output_dir, ".idx")
  if has_idx(downloaded):
    return downloaded
  reasons = [f"{DEBIAN_DIR} is missing"]
  for attempt in (lambda: _apt_install(log), lambda: _tfds_download(downloaded, log)):
    try:
      return attempt()
    except FetchError as e:
      reasons.append(str(e))
  raise FetchError("could not get Fashion-MNIST (" + "; ".join(reasons) + f"): apt-get install "
                   f"{DEBIAN_PACKAGE}, or put the four IDX .gz files in a folder and pass --idx_dir")


def fetch(output_dir, idx_dir=None, train_shards=10, validation_shards=2, num_workers=2, log=None):
  """Builds output_dir from Fashion-MNIST; returns the manifest."""
  source_dir = find_idx_dir(output_dir, idx_dir, log)
  source = image_sources.idx_source(source_dir, name="fashion_mnist")
  return tfrecord_builder.build(source, output_dir, train_shards, validation_shards, num_workers,
                                log=log)


def main(argv):
  def fail(message):
    sys.stderr.write(f"error: {message}\n")
    sys.exit(1)

  if len(argv) > 1:
    fail(f"unexpected argument {argv[1]!r}: every setting is a --flag (see --help)")
  fv = flags.FLAGS
  if not fv.output_dir:
    fail("--output_dir is required: the folder the TFRecords go to, e.g. data/fashion_mnist")
  for flag in ("train_shards", "validation_shards", "num_workers"):
    if fv[flag].value < 1:
      fail(f"--{flag}={fv[flag].value}: give a positive number")
  try:
    fetch(fv.output_dir, fv.idx_dir, fv.train_shards, fv.validation_shards,
          fv.num_workers)
  except (FetchError, image_sources.SourceError) as e:
    fail(str(e))


def run():
  define_flags()
  app.run(main)


if __name__ == "__main__":
  run()
