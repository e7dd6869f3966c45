"""--precision=auto (tfssl/runtime/precision.py): what it picks for each kind of device, from
faked device descriptions; the line that says so; flags.json records the choice and a resumed run
keeps it."""

import json
import re

import keras
import pytest
import tensorflow as tf

from helpers import cli
from tfssl.config import Config
from tfssl.runtime import precision
from tfssl.runtime.precision import Devices, choose

CPU_WITH_AMX = frozenset({"fpu", "avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
CPU_WITH_AVX512_BF16 = frozenset({"fpu", "avx2", "avx512f", "avx512_bf16"})
CPU_PLAIN = frozenset({"fpu", "avx2", "fma"})


@pytest.mark.parametrize("devices, picked", [
    (Devices("cpu", cpu_flags=CPU_WITH_AMX), "mixed_bfloat16"),  # Sapphire Rapids and newer
    (Devices("cpu", cpu_flags=CPU_WITH_AVX512_BF16), "fp32"),  # Zen 4/5, Cooper Lake: no clear gain
    (Devices("cpu", cpu_flags=CPU_PLAIN), "fp32"),
    (Devices("cpu"), "fp32"),  # no /proc/cpuinfo (macOS, Windows)
    (Devices("gpu", compute_capabilities=((6, 0),)), "fp32"),  # P100: no tensor cores
    (Devices("gpu", compute_capabilities=((7, 0),)), "mixed_float16"),  # V100
    (Devices("gpu", compute_capabilities=((7, 5),)), "mixed_float16"),  # T4
    (Devices("gpu", compute_capabilities=((8, 0),)), "mixed_bfloat16"),  # A100
    (Devices("gpu", compute_capabilities=((9, 0), (9, 0))), "mixed_bfloat16"),  # H100s
    (Devices("gpu", compute_capabilities=((8, 6), (7, 5))), "mixed_float16"),  # the slowest decides
    (Devices("gpu"), "fp32"),  # capability unknown
    (Devices("tpu"), "mixed_bfloat16"),
])
def test_auto_picks_the_fast_format_of_each_device(devices, picked):
  chosen, why = choose(devices)
  assert chosen == picked
  assert why and "\n" not in why


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
  info = tmp_path / "cpuinfo"
  info.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 avx512_bf16 amx_bf16\n"
                  "processor\t: 1\nflags\t\t: fpu avx2 avx512_bf16 amx_bf16\n")
  assert precision.cpu_flags(str(info)) == frozenset({"fpu", "avx2", "avx512_bf16", "amx_bf16"})
  assert precision.cpu_flags(str(tmp_path / "missing")) == frozenset()


def test_the_devices_of_a_gpu_machine_are_read_from_tensorflow(monkeypatch):
  gpus = [object(), object()]
  details = iter([{"compute_capability": (8, 0), "device_name": "A100"},
                  {"compute_capability": (7, 0), "device_name": "V100"}])
  monkeypatch.setattr(tf.config, "list_physical_devices",
                      lambda kind=None: gpus if kind == "GPU" else [])
  monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda device: next(details))
  devices = precision.devices_of(tf.distribute.get_strategy())
  assert devices == Devices("gpu", compute_capabilities=((8, 0), (7, 0)), name="A100, V100")
  assert choose(devices)[0] == "mixed_float16"


def test_an_explicit_precision_is_kept_and_auto_resolves_once(tmp_path, monkeypatch):
  strategy = tf.distribute.get_strategy()
  assert precision.resolve(Config.make(precision="mixed_bfloat16"), strategy) == (
      "mixed_bfloat16", None)
  monkeypatch.setattr(precision, "devices_of", lambda s: Devices("cpu", cpu_flags=CPU_WITH_AMX))
  workdir = tmp_path / "w"
  chosen, why = precision.resolve(Config.make(precision="auto", workdir=str(workdir)), strategy)
  assert (chosen, why) == ("mixed_bfloat16", "this CPU has AMX-BF16 units")
  # A workdir whose run recorded fp32 keeps it on this (faked AMX) machine.
  workdir.mkdir()
  (workdir / "flags.json").write_text(json.dumps({"precision": "fp32", "task": "rotation"}))
  chosen, why = precision.resolve(Config.make(precision="auto", workdir=str(workdir)), strategy)
  assert chosen == "fp32" and "recorded by the run this one resumes" in why


@pytest.fixture
def restore_policy():
  before = keras.mixed_precision.global_policy().name
  yield
  keras.mixed_precision.set_global_policy(before)


def test_a_run_says_what_auto_chose_and_a_resumed_run_keeps_it(tmp_path, fashion_mnist_dir,
                                                               monkeypatch, restore_policy):
  workdir = tmp_path / "w"
  args = ["--task=rotation", "--architecture=cifar_resnet18", "--filters_factor=1",
          "--dataset=fashion_mnist", "--dataset_dir=%s" % fashion_mnist_dir,
          "--workdir=%s" % workdir, "--batch_size=8", "--preprocessing=resize,-1_to_1,rotate",
          "--resize_size=32", "--lr=0.1", "--precision=auto", "--save_checkpoints_secs=3600"]
  expected, why = choose(precision.devices_of(tf.distribute.get_strategy()))
  first = cli.train_and_eval(args + ["--train_steps=1"])
  assert first.returncode == 0, first.stderr[-3000:]
  said = [line for line in first.stderr.splitlines() if "--precision=auto" in line]
  assert len(said) == 1 and re.search(r"Precision %s \(--precision=auto: %s\)\.$" % (
      expected, re.escape(why)), said[0]), said
  assert json.loads((workdir / "flags.json").read_text())["precision"] == expected
  # The same workdir later on a machine where auto would pick otherwise: the run keeps its format.
  other = "mixed_bfloat16" if expected == "fp32" else "fp32"
  monkeypatch.setattr(precision, "choose", lambda devices: (other, "faked"))
  again = cli.train_and_eval(args + ["--train_steps=2"])
  assert again.returncode == 0, again.stderr[-3000:]
  assert "Precision %s (--precision=auto: recorded by the run this one resumes" % expected in (
      again.stderr)
  assert json.loads((workdir / "flags.json").read_text())["precision"] == expected
