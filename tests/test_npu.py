"""tfssl.runtime.npu: the NPURunConfig mapping and opening the NPU through a stand-in adapter."""

import sys
import textwrap

import pytest

from tfssl.config import Config
from tfssl.runtime.checkpoint_settings import CheckpointSettings
from tfssl.runtime.npu import (NO_OP_FIELDS, PRECISION_MODES, NpuAdapterMissing, RunConfig,
                               close_npu_device, open_npu_device)

# Records every call the runtime makes, so the test reads the order back.
_STAND_IN = textwrap.dedent("""
  calls = []

  class _Handle:
    def as_default(self):
      calls.append("as_default")
      return self

  def open(device_id=None):
    calls.append("open")
    return _Handle()

  def close():
    calls.append("close")
""")


@pytest.fixture
def fake_adapter(tmp_path, monkeypatch):
  (tmp_path / "npu_device.py").write_text(_STAND_IN)
  monkeypatch.syspath_prepend(str(tmp_path))
  monkeypatch.delitem(sys.modules, "npu_device", raising=False)
  yield
  sys.modules.pop("npu_device", None)


def test_open_and_close_go_through_the_adapter(fake_adapter):
  handle = open_npu_device(Config.make(device="npu"))
  adapter = sys.modules["npu_device"]
  assert adapter.calls == ["open", "as_default"]
  assert isinstance(handle, adapter._Handle)
  close_npu_device(handle)
  assert adapter.calls == ["open", "as_default", "close"]


def test_no_device_flag_opens_nothing(fake_adapter):
  assert open_npu_device(Config.make()) is None
  assert "npu_device" not in sys.modules
  close_npu_device(None)


def test_unknown_device_is_one_clear_line():
  with pytest.raises(ValueError, match=r"unknown --device=tpu: use npu, or leave it unset"):
    open_npu_device(Config.make(device="tpu"))


def test_missing_adapter_is_one_clear_line(monkeypatch):
  monkeypatch.setitem(sys.modules, "npu_device", None)  # as if not installed
  with pytest.raises(SystemExit) as info:
    open_npu_device(Config.make(device="npu"))
  message = str(info.value)
  assert isinstance(info.value, NpuAdapterMissing) and "\n" not in message
  assert message.startswith("--device=npu needs Ascend's TF2 adapter")
  assert "CANN" in message and "npu_device" in message


def test_adapter_that_does_not_load_says_so(tmp_path, monkeypatch):
  (tmp_path / "npu_device.py").write_text(
      "raise ImportError('libascendcl.so: cannot open shared object file')\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  monkeypatch.delitem(sys.modules, "npu_device", raising=False)
  with pytest.raises(NpuAdapterMissing, match=r"installed but does not load \(libascendcl.so"):
    open_npu_device(Config.make(device="npu"))


def test_run_config_maps_every_field(tmp_path):
  base = Config.make(task="rotation")
  run = RunConfig(model_dir=str(tmp_path), save_checkpoints_steps=50, keep_checkpoint_max=3,
                  iterations_per_loop=10, log_step_count_steps=20,
                  precision_mode="allow_mix_precision", enable_data_pre_proc=True, hcom_parallel=False)
  config = run.apply_to(base)
  assert config.workdir == str(tmp_path)
  assert config.steps_per_execution == 10
  assert config.keep_checkpoint_max == 3
  assert config.log_every_steps == 20
  assert config.precision == "mixed_float16"
  assert config.task == "rotation"
  assert run.checkpoint_settings(base) == CheckpointSettings(save_every_steps=50, keep_checkpoint_max=3)
  notes = run.notes()
  assert len(notes) == 2 and all(name in " ".join(notes) for name in NO_OP_FIELDS)


def test_unset_fields_keep_the_config():
  base = Config.make(task="rotation", workdir="/w", steps_per_execution=4, precision="mixed_bfloat16")
  run = RunConfig()
  assert run.to_config_overrides() == {} and run.apply_to(base) == base and run.notes() == []
  assert run.checkpoint_settings(base) == CheckpointSettings(save_every_secs=600, keep_checkpoint_max=5)


@pytest.mark.parametrize("mode, flag", [
    ("allow_mix_precision", "mixed_float16"), ("allow_fp32_to_fp16", "mixed_float16"),
    ("force_fp16", "mixed_float16"), ("must_keep_origin_dtype", "fp32"), ("force_fp32", "fp32"),
])
def test_precision_modes(mode, flag):
  assert RunConfig(precision_mode=mode).apply_to(Config.make(precision="mixed_bfloat16")).precision == flag
  assert PRECISION_MODES[mode] == flag


def test_unknown_precision_mode_is_one_clear_line():
  with pytest.raises(ValueError, match=r"precision_mode='fp8' is unknown: use one of allow_mix_precision"):
    RunConfig(precision_mode="fp8")


def test_keep_zero_means_keep_all_and_bad_steps_fail():
  assert RunConfig(keep_checkpoint_max=0).apply_to(Config.make()).keep_checkpoint_max is None
  with pytest.raises(ValueError, match=r"iterations_per_loop=0: give a positive number"):
    RunConfig(iterations_per_loop=0)


def test_checkpoint_settings_checks():
  with pytest.raises(ValueError, match="not both"):
    CheckpointSettings(save_every_steps=10, save_every_secs=60)
  with pytest.raises(ValueError, match=r"--save_checkpoints_secs=0: give a positive number"):
    CheckpointSettings.from_config(Config.make(save_checkpoints_secs=0))
