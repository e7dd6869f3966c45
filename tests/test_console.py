"""What a user sees on the console: no TensorFlow C++ banner, and for every mistake a user can make,
one `tfssl: error:` (or `verify failed:`) line, no traceback, a documented exit code, and nothing
half-written in the workdir."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from helpers import cli
from helpers.cli import BANNER, assert_one_line


def console(args, repo_root, module="tfssl.train_and_eval", env=None):
  """A real process, as a user's shell starts it: tfssl's commands set the environment
  TensorFlow reads themselves."""
  environ = dict(os.environ, **(env or {}))
  environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
  environ.pop("TF_CONFIG", None)
  environ["TF_ENABLE_ONEDNN_OPTS"] = "1"  # the banner's worst case
  return cli.process(args, module=module, env=environ, cwd=repo_root)


def test_imagenet_flagfile_on_an_empty_folder(tmp_path, repo_root):
  empty = tmp_path / "empty"
  empty.mkdir()
  workdir = tmp_path / "w"
  # A real process: the exit code and line of a usage error found after TensorFlow is imported.
  proc = console(["--flagfile=flags/rotation/imagenet.cfg", "--workdir=%s" % workdir,
                  "--dataset_dir=%s" % empty], repo_root)
  assert_one_line(proc, 2, str(empty), "train-00000-of-01024")
  assert not workdir.exists()  # no task_info.json left behind


def test_an_export_that_does_not_exist(tmp_path, repo_root, fashion_mnist_dir):
  workdir = tmp_path / "w"
  proc = cli.train_and_eval(["--flagfile=flags/evaluation/rotation_or_exemplar.cfg",
                             "--workdir=%s" % workdir, "--dataset=fashion_mnist",
                             "--dataset_dir=%s" % fashion_mnist_dir,
                             "--hub_module=%s" % (tmp_path / "no_export")])
  assert_one_line(proc, 2, "--hub_module", "no_export", "saved_model.pb")
  assert not workdir.exists()


def test_a_flag_absl_cannot_parse_exits_2(repo_root):
  # A real process: absl's own parse error, which would exit 1 after a FATAL line.
  proc = console(["--batch_size=many"], repo_root)
  assert_one_line(proc, 2, "--batch_size", "many")
  assert "FATAL Flags parsing error" not in proc.stderr


def test_an_unknown_flag_exits_2():
  proc = cli.train_and_eval(["--batchsize=8"])
  assert_one_line(proc, 2, "batchsize")


def test_knn_with_a_chain_of_another_size_than_the_export(tmp_path, fashion_mnist_dir,
                                                          random_export):
  proc = cli.train_and_eval(["--task=knn_eval", "--hub_module=%s" % random_export,
                             "--workdir=%s" % (tmp_path / "k"), "--dataset=fashion_mnist",
                             "--dataset_dir=%s" % fashion_mnist_dir, "--knn_preprocessing=0_to_1",
                             "--eval_batch_size=500", "--val_split=test",
                             "--knn_max_train_examples=500"])
  assert_one_line(proc, 2, "28x28", "32x32", "--knn_preprocessing")


@pytest.mark.slow
def test_verify_on_a_truncated_shard(tmp_path, repo_root, fashion_mnist_dir):
  folder = tmp_path / "records"
  shutil.copytree(fashion_mnist_dir, folder)
  with open(folder / "dataset_info.json") as f:
    shard = json.load(f)["splits"]["validation"]["shards"][0]["file"]
  path = folder / shard
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) - 1000)
  # A real process: the converter's own exit code and line.
  proc = console(["--verify", "--output_dir=%s" % folder], repo_root,
                 module="tfssl.tools.build_tfrecords")
  line = assert_one_line(proc, 1, shard, "truncated record", "rerun build_tfrecords",
                         prefix="verify failed:")
  assert "function_node" not in line and "[Op:" not in line


@pytest.mark.slow
def test_a_training_run_prints_progress_and_no_banner(tmp_path, repo_root, fashion_mnist_dir):
  proc = console(["--flagfile=flags/rotation/fashion_mnist.cfg", "--workdir=%s" % (tmp_path / "w"),
                  "--dataset_dir=%s" % fashion_mnist_dir, "--train_steps=3",
                  "--log_every_steps=3"], repo_root)
  assert proc.returncode == 0, proc.stderr[-3000:]
  for banner in BANNER:
    assert banner not in proc.stderr, proc.stderr[:2000]
  assert "First step done" in proc.stderr and "step 3/3" in proc.stderr
  # Short lines: a clock and the message, not absl's `I1201 11:46:47.356666 1404895 file.py:158]`.
  progress = [l for l in proc.stderr.splitlines() if "step 3/3" in l][0]
  assert ".py:" not in progress


def test_the_banner_comes_back_when_asked(tmp_path, repo_root):
  # The same failing run as above, which imports TensorFlow before it stops.
  empty = tmp_path / "empty"
  empty.mkdir()
  proc = console(["--flagfile=flags/rotation/imagenet.cfg", "--workdir=%s" % (tmp_path / "w"),
                  "--dataset_dir=%s" % empty], repo_root, env={"TFSSL_TF_BANNER": "1"})
  assert proc.returncode == 2
  assert "oneDNN custom operations are on" in proc.stderr


def test_the_filter_keeps_every_other_line_in_order():
  code = ("import sys\nfrom tfssl.runtime.console import quiet_tensorflow_banner\n"
          "quiet_tensorflow_banner()\n"
          "sys.stderr.write('one\\nWARNING: All log messages before absl::InitializeLog() is called "
          "are written to STDERR\\ntwo\\n')\n"
          "sys.stderr.write('I0000 00:00:1796126380.433995   25426 port.cc:153] oneDNN custom "
          "operations are on. You may see...\\nthree')\n")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
  assert proc.returncode == 0
  assert proc.stderr == "one\ntwo\nthree"


@pytest.mark.slow
def test_a_task_without_a_flagfile_takes_its_original_config(tmp_path, repo_root,
                                                            fashion_mnist_dir):
  workdir = tmp_path / "w"
  proc = cli.train_and_eval(["--task=rotation", "--dataset=fashion_mnist",
                             "--workdir=%s" % workdir, "--dataset_dir=%s" % fashion_mnist_dir,
                             "--train_steps=2"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  told = [l for l in proc.stderr.splitlines() if "without a --flagfile" in l]
  assert len(told) == 1 and "flags/rotation/fashion_mnist.cfg" in told[0], proc.stderr[:2000]
  with open(workdir / "flags.json") as f:
    flags = json.load(f)
  # The flagfile's settings, with the command line's --train_steps over its own.
  assert flags["preprocessing"] == "resize,-1_to_1,rotate" and flags["train_steps"] == 2


def test_a_task_with_no_config_of_its_own_names_every_missing_flag(tmp_path, repo_root,
                                                                   fashion_mnist_dir):
  proc = cli.train_and_eval(["--task=linear_eval", "--dataset=fashion_mnist",
                             "--workdir=%s" % (tmp_path / "w"),
                             "--dataset_dir=%s" % fashion_mnist_dir])
  assert_one_line(proc, 2, "--hub_module", "--batch_size", "--lr", "--preprocessing",
                  "--epochs or --train_steps")


@pytest.mark.slow
def test_an_export_brings_its_evaluation_image(tmp_path, fashion_mnist_dir, rotation_run):
  # A rotation export (trained, then exported by --run_eval: conftest.rotation_run) remembers its
  # eval chain (resize,-1_to_1 at 32): knn_eval on it needs no chain flag; a chain given on the
  # command line still wins and is checked against the input.
  _, export = rotation_run
  with open(os.path.join(export, "tfssl_eval_view.json")) as f:
    record = json.load(f)
  assert record["chain"] == "resize,-1_to_1" and record["flags"]["resize_size"] == "32"
  assert record["input_shape"] == [None, 32, 32, 3]
  knn = ["--task=knn_eval", "--hub_module=%s" % export, "--workdir=%s" % (tmp_path / "k"),
         "--dataset=fashion_mnist", "--dataset_dir=%s" % fashion_mnist_dir, "--val_split=test",
         "--eval_batch_size=500", "--knn_max_train_examples=1000"]
  proc = cli.train_and_eval(knn)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "--knn_preprocessing=resize,-1_to_1" in proc.stderr
  with open(tmp_path / "k" / "eval_results.json") as f:
    assert 0.1 < json.load(f)[-1]["knn_top1_pre_logits"] <= 1.0
  wrong = cli.train_and_eval(knn + ["--knn_preprocessing=0_to_1"])
  assert_one_line(wrong, 2, "28x28", "32x32")
