r"""Converts images to slim-style TFRecord shards plus a dataset_info.json manifest.

  python -m tfssl.tools.build_tfrecords --source=folder --train_dir=T [--validation_dir=V] \
      [--labels_file=L] --output_dir=OUT
  python -m tfssl.tools.build_tfrecords --source=cifar10 --input_dir=DIR --output_dir=OUT
  python -m tfssl.tools.build_tfrecords --verify --output_dir=OUT     (check an existing build)

A killed run resumes where it stopped when rerun with the same flags; unreadable images are skipped
and listed (or stop the run under --strict).

Exit codes: 0 done (and verified, with --verify); 1 the input or the build is wrong: one `error:`
line naming the file or flag and the fix, or one `verify failed:` line per problem; 2 a flag that
cannot be parsed.
"""

import math
import os
import sys

from absl import app, flags

from tfssl.tools import image_sources, shard_writer, tfrecord_builder

# slim's ImageNet shard counts for folders; the small datasets want few, larger shards.
_DEFAULT_SHARDS = {"folder": (1024, 128), "cifar10": (10, 2), "cifar100": (10, 2), "idx": (10, 2)}


def define_flags(flag_values=None):
  """Defines the tool's flags (on absl's global FLAGS unless given others); run() calls it."""
  fv = flag_values if flag_values is not None else flags.FLAGS
  if "source" in fv:
    return fv
  flags.DEFINE_enum("source", None, list(_DEFAULT_SHARDS),
                    "What to convert: folder (class sub-folders, or images without classes), "
                    "cifar10, cifar100, idx "
                    "(MNIST-style IDX files). Leave out with --verify to check an existing build "
                    "only.", flag_values=fv)
  flags.DEFINE_string("train_dir", None, "folder: the training images, one sub-folder per class.",
                      flag_values=fv)
  flags.DEFINE_string("validation_dir", None, "folder: the validation images, same layout.",
                      flag_values=fv)
  flags.DEFINE_string("labels_file", None,
                      "folder/idx: class names, one per line, in label order (folder: the class "
                      "sub-folder names, default their sorted order; idx: default Fashion-MNIST's).",
                      flag_values=fv)
  flags.DEFINE_string("input_dir", None, "cifar10/cifar100/idx: the folder holding the files.",
                      flag_values=fv)
  flags.DEFINE_string("output_dir", None, "Where the shards and dataset_info.json go.",
                      flag_values=fv)
  flags.DEFINE_string("name", None, "Dataset name in the manifest (default: from --source, or the "
                      "output folder's name for folder).", flag_values=fv)
  flags.DEFINE_integer("train_shards", None, "Train shards (default: folder about 1,000 images a "
                       "shard, 2 to 1024; else 10).", flag_values=fv)
  flags.DEFINE_integer("validation_shards", None, "Validation shards (default: folder about "
                       "1,000 images a shard, 1 to 128; else 2).", flag_values=fv)
  flags.DEFINE_bool("unlabeled", False, "folder: the images have no classes; every image below "
                    "--train_dir, at any depth, is written without a label (a flat folder of "
                    "images is read so without this flag).", flag_values=fv)
  flags.DEFINE_integer("num_workers", os.cpu_count() or 1,
                       "Processes writing shards in parallel, each whole shards.", flag_values=fv)
  flags.DEFINE_integer("seed", image_sources.SHUFFLE_SEED,
                       "folder: seed of the fixed shuffle of the file list.", flag_values=fv)
  flags.DEFINE_bool("strict", False, "Stop with exit code 1 at the first unreadable image instead "
                    "of skipping it.", flag_values=fv)
  flags.DEFINE_bool("verify", False, "Read everything back and check it against the manifest "
                    "(after building, when --source is given).", flag_values=fv)
  return fv


class UsageError(ValueError):
  pass


def _fail(message):
  sys.stderr.write(f"error: {message}\n")
  sys.exit(1)


def load_source(source, *, train_dir=None, validation_dir=None, labels_file=None, input_dir=None,
                name=None, output_dir=None, seed=image_sources.SHUFFLE_SEED, unlabeled=False):
  """The SourceData that --source and its flags describe."""
  if source == "folder":
    if not train_dir:
      raise UsageError("--source=folder needs --train_dir: the folder with one sub-folder per "
                       "class, or a folder of images (flat, or with --unlabeled)")
    name = name or os.path.basename(os.path.normpath(output_dir or train_dir))
    return image_sources.folder_source(train_dir, validation_dir, labels_file, name, seed,
                                       unlabeled=unlabeled)
  if not input_dir:
    raise UsageError(f"--source={source} needs --input_dir: the folder holding its files")
  if source in ("cifar10", "cifar100"):
    return image_sources.cifar_source(input_dir, source, name)
  classes = image_sources.read_labels_file(labels_file) if labels_file else None
  return image_sources.idx_source(input_dir, classes, name or "fashion_mnist")


def default_shards(kind, source):
  """(train, validation) shard counts: the small datasets' fixed ones; for a folder about 1,000
  images a shard (slim's ImageNet has 1,250), at most slim's 1024 and 128, and at least 2 train
  shards so that the train split has its held-out `val` part."""
  if kind != "folder":
    return _DEFAULT_SHARDS[kind]
  train, _ = _DEFAULT_SHARDS["folder"]
  per_shard = 1000
  n_train = len(source.splits.get("train", []))
  n_val = len(source.splits.get("validation", []))
  return (max(2, min(train, math.ceil(n_train / per_shard))),
          max(1, min(_DEFAULT_SHARDS["folder"][1], math.ceil(n_val / per_shard))))


def _check_counts(train_shards, validation_shards, num_workers):
  for flag, value in (("--train_shards", train_shards), ("--validation_shards", validation_shards),
                      ("--num_workers", num_workers)):
    if value < 1:
      raise UsageError(f"{flag}={value}: give a positive number")


def main(argv):
  if len(argv) > 1:
    _fail(f"unexpected argument {argv[1]!r}: every setting is a --flag (see --help)")
  execute(flags.FLAGS)


def execute(fv):
  """Builds and/or verifies as the parsed flags `fv` say; exits 1 with one line on bad input."""
  if not fv.output_dir:
    _fail("--output_dir is required: the folder the shards and dataset_info.json go to")
  if not fv.source and not fv.verify:
    _fail("--source is required: one of folder, cifar10, cifar100, idx (or give --verify alone "
          "to check an existing build)")
  if fv.source:
    try:
      source = load_source(fv.source, train_dir=fv.train_dir,
                           validation_dir=fv.validation_dir, labels_file=fv.labels_file,
                           input_dir=fv.input_dir, name=fv.name, output_dir=fv.output_dir,
                           seed=fv.seed, unlabeled=fv.unlabeled)
      train_default, validation_default = default_shards(fv.source, source)
      train_shards = train_default if fv.train_shards is None else fv.train_shards
      validation_shards = (validation_default if fv.validation_shards is None
                           else fv.validation_shards)
      _check_counts(train_shards, validation_shards, fv.num_workers)
      tfrecord_builder.build(source, fv.output_dir, train_shards, validation_shards,
                             fv.num_workers, fv.strict)
    except (UsageError, image_sources.SourceError) as e:
      _fail(str(e))
    except shard_writer.StrictFailure as e:
      _fail(f"{e.args[0]}: unreadable image ({e.args[1]}); --strict stops here: fix or remove the "
            "file, or drop --strict to skip and list such files")
  if fv.verify:
    # Imported here: building alone never loads the reading side.
    from tfssl.tools import verify_tfrecords
    problems = verify_tfrecords.verify(fv.output_dir)
    for problem in problems:
      sys.stderr.write(f"verify failed: {problem}\n")
    if problems:
      sys.exit(1)
    sys.stderr.write(f"verify: {fv.output_dir} matches dataset_info.json, every image decodes\n")


def run():
  from tfssl.runtime.console import flags_parser, quiet_tensorflow_banner
  from tfssl.runtime.cpu_defaults import apply_cpu_defaults
  apply_cpu_defaults()  # TF_CPP_MIN_LOG_LEVEL=2: --verify reads the shards through TensorFlow
  quiet_tensorflow_banner()
  define_flags()
  app.run(main, flags_parser=flags_parser(
      "error:", "python -m tfssl.tools.build_tfrecords --help lists the flags"))


if __name__ == "__main__":
  run()
