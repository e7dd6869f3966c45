"""tfssl.runtime: strategies, workers and their workdirs, precision, CPU defaults.

Device configuration is process-global and frozen once TensorFlow initialises, so everything that
splits the CPU runs in a fresh interpreter.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import pytest
import tensorflow as tf

from tfssl.config import Config
from tfssl.runtime import cpu_defaults, precision
from tfssl.runtime import strategy as strategy_lib


def _run_python(code):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env.pop("TF_CONFIG", None)
  done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                        text=True, env=env, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  return json.loads(done.stdout.strip().splitlines()[-1])


def test_cpu_replicas_strategies_in_a_fresh_process(tmp_path):
  out = _run_python("""
    import json
    import tensorflow as tf
    from tfssl.config import Config
    from tfssl.runtime import session, strategy
    result = {}
    rt = session.start_runtime(Config.make(strategy="mirrored", cpu_replicas=2,
                                           precision="mixed_bfloat16", workdir=%r))
    result["threads"] = [tf.config.threading.get_intra_op_parallelism_threads(),
                         tf.config.threading.get_inter_op_parallelism_threads()]
    result["runtime"] = [rt.strategy.num_replicas_in_sync, rt.policy, rt.chief, rt.workdir,
                         rt.checkpoints.save_every_secs]
    for name in ("auto", "mirrored", "default", "one_device"):
      made = strategy.make_strategy(Config.make(strategy=name, cpu_replicas=2))
      result[name] = [type(made).__name__, made.num_replicas_in_sync]
    try:
      strategy.split_cpu(3)
    except RuntimeError as err:
      result["late"] = str(err)
    rt.close()
    print(json.dumps(result))
  """ % str(tmp_path))
  assert out["threads"] == [os.cpu_count(), 2]
  assert out["runtime"] == [2, "mixed_bfloat16", True, str(tmp_path), 600]
  assert out["auto"] == ["MirroredStrategy", 2]
  assert out["mirrored"] == ["MirroredStrategy", 2]
  assert out["default"][1] == 1 and out["one_device"] == ["OneDeviceStrategy", 1]
  assert "--cpu_replicas=3 came too late" in out["late"] and "\n" not in out["late"]


def test_one_mirrored_strategy_per_device_set_in_a_process():
  # A second strategy over the same devices would reuse the first one's collective keys, and the
  # collectives of two trainers in one process would collide (runtime/strategy.py).
  mirrored = strategy_lib.make_strategy(Config.make(strategy="mirrored", cpu_replicas=2))
  auto = strategy_lib.make_strategy(Config.make(strategy="auto", cpu_replicas=2))
  assert mirrored is auto and mirrored.num_replicas_in_sync == 2
  assert strategy_lib.mirrored_strategy(["/cpu:0", "/cpu:1"]) is mirrored


def test_unknown_strategy_and_bad_cpu_replicas_are_one_clear_line():
  with pytest.raises(ValueError, match=r"unknown --strategy=horovod: use one of auto, default"):
    strategy_lib.make_strategy(Config.make(strategy="horovod"))
  with pytest.raises(ValueError, match=r"--cpu_replicas=-1"):
    strategy_lib.make_strategy(Config.make(cpu_replicas=-1))
  with pytest.raises(ValueError, match=r"--device=npu runs one NPU per process"):
    strategy_lib.make_strategy(Config.make(device="npu", strategy="mirrored"))


def test_tpu_without_a_reachable_tpu_names_the_flag():
  with pytest.raises(ValueError, match=r"--strategy=tpu could not reach the TPU None .*--tpu_name="):
    strategy_lib.make_strategy(Config.make(strategy="tpu"))


@pytest.mark.parametrize("text, message", [
    (None, "needs the TF_CONFIG environment variable"),
    ("{not json", "TF_CONFIG is not valid JSON"),
    ('{"task": {"type": "worker", "index": 0}}', "no cluster with `worker`"),
    ('{"cluster": {"worker": ["a:1"]}}', "no task"),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}',
     "task worker:2 is not in its cluster"),
])
def test_bad_tf_config_is_one_clear_line(text, message):
  environ = {} if text is None else {"TF_CONFIG": text}
  with pytest.raises(ValueError, match=message) as info:
    strategy_lib.parse_tf_config(environ)
  assert "\n" not in str(info.value)


def test_multi_worker_without_tf_config_fails_before_building_anything(monkeypatch):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  with pytest.raises(ValueError, match="--strategy=multi_worker needs the TF_CONFIG"):
    strategy_lib.make_strategy(Config.make(strategy="multi_worker"))


def test_one_worker_multi_worker_strategy_is_its_own_chief(tmp_path):
  # A real MultiWorkerMirroredStrategy; with one worker it needs no peers to start.
  out = _run_python("""
    import json, os, socket
    probe = socket.socket()
    probe.bind(("localhost", 0))
    port = probe.getsockname()[1]
    probe.close()
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": ["localhost:%%d" %% port]},
                                          "task": {"type": "worker", "index": 0}})
    from tfssl.config import Config
    from tfssl.runtime import strategy
    made = strategy.make_strategy(Config.make(strategy="multi_worker"))
    print(json.dumps([made.num_replicas_in_sync, strategy.is_chief(made),
                      strategy.worker_workdir(%r, made)]))
  """ % str(tmp_path))
  assert out == [1, True, str(tmp_path)]


def test_valid_tf_config_parses():
  cluster = {"chief": ["c:1"], "worker": ["a:1", "b:1"]}
  parsed = strategy_lib.parse_tf_config(
      {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}})})
  assert parsed["cluster"] == cluster and parsed["task"]["index"] == 1


class _WorkerStrategy:
  """Stands in for MultiWorkerMirroredStrategy: only its cluster_resolver is read."""

  def __init__(self):
    self.cluster_resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()


def _as_task(monkeypatch, cluster, task_type, index):
  monkeypatch.setenv("TF_CONFIG", json.dumps(
      {"cluster": cluster, "task": {"type": task_type, "index": index}}))
  return _WorkerStrategy()


def test_chief_is_worker_zero_without_a_chief_task(monkeypatch):
  cluster = {"worker": ["a:1", "b:1"]}
  assert strategy_lib.is_chief(_as_task(monkeypatch, cluster, "worker", 0))
  assert not strategy_lib.is_chief(_as_task(monkeypatch, cluster, "worker", 1))


def test_chief_task_wins_over_worker_zero(monkeypatch):
  cluster = {"chief": ["c:1"], "worker": ["a:1", "b:1"]}
  assert strategy_lib.is_chief(_as_task(monkeypatch, cluster, "chief", 0))
  assert not strategy_lib.is_chief(_as_task(monkeypatch, cluster, "worker", 0))


def test_single_worker_is_chief():
  assert strategy_lib.is_chief(tf.distribute.get_strategy())


def test_non_chief_writes_to_scratch_that_cleanup_removes(tmp_path, monkeypatch):
  workdir = str(tmp_path)
  cluster = {"worker": ["a:1", "b:1"]}
  chief = _as_task(monkeypatch, cluster, "worker", 0)
  assert strategy_lib.worker_workdir(workdir, chief) == workdir
  other = _as_task(monkeypatch, cluster, "worker", 1)
  scratch = strategy_lib.worker_workdir(workdir, other)
  assert scratch == os.path.join(workdir, ".worker_tmp", "worker_1") and os.path.isdir(scratch)
  with open(os.path.join(scratch, "ckpt-1.index"), "w") as f:
    f.write("x")
  strategy_lib.cleanup_worker_workdir(workdir, other)
  assert os.listdir(workdir) == []
  strategy_lib.cleanup_worker_workdir(workdir, chief)  # the chief's files are never removed
  assert os.path.isdir(workdir)


@pytest.fixture
def restore_policy():
  before = keras.mixed_precision.global_policy().name
  yield
  keras.mixed_precision.set_global_policy(before)


@pytest.mark.parametrize("flag, policy, compute, loss_scale", [
    ("fp32", "float32", "float32", False),
    ("mixed_float16", "mixed_float16", "float16", True),
    ("mixed_bfloat16", "mixed_bfloat16", "bfloat16", False),
])
def test_precision_sets_the_keras_policy(restore_policy, flag, policy, compute, loss_scale):
  config = Config.make(precision=flag)
  assert precision.apply_precision(config) == policy
  layer = keras.layers.Dense(2)
  assert (layer.compute_dtype, layer.variable_dtype) == (compute, "float32")
  assert precision.needs_loss_scale(config) is loss_scale


def test_unknown_precision_is_one_clear_line(restore_policy):
  with pytest.raises(ValueError, match=r"unknown --precision=fp8: use one of auto, fp32, mixed_float16"):
    precision.apply_precision(Config.make(precision="fp8"))


def test_float16_probe():
  # TF 2.21's CPU kernels run float16 conv and matmul with gradients (precision.py's note).
  assert precision.float16_supported()
  # The probe must also be able to say no: CPU conv has no int8 kernel.
  assert not precision.dtype_supported(tf.int8)


def test_cpu_defaults_set_what_the_user_left_unset():
  environ = {}
  applied = cpu_defaults.apply_cpu_defaults(environ, machine="x86_64")
  assert environ == {"TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"} == applied
  windows = {}
  cpu_defaults.apply_cpu_defaults(windows, machine="AMD64")
  assert windows["TF_ENABLE_ONEDNN_OPTS"] == "1"


def test_cpu_defaults_respect_the_user():
  environ = {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "0"}
  assert cpu_defaults.apply_cpu_defaults(environ, machine="x86_64") == {}
  assert environ == {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "0"}


def test_cpu_defaults_leave_onednn_alone_off_x86():
  environ = {}
  cpu_defaults.apply_cpu_defaults(environ, machine="aarch64")
  assert "TF_ENABLE_ONEDNN_OPTS" not in environ


def test_thread_counts():
  assert cpu_defaults.thread_counts(environ={}, cpu_count=8) == (8, 2)
  assert cpu_defaults.thread_counts(Config.make(cpu_replicas=4), environ={}, cpu_count=8) == (8, 4)
  user = {"TF_NUM_INTRAOP_THREADS": "3", "TF_NUM_INTEROP_THREADS": "1"}
  assert cpu_defaults.thread_counts(environ=user, cpu_count=8) == (3, 1)
  with pytest.raises(ValueError, match=r"TF_NUM_INTRAOP_THREADS='many' is not a positive number"):
    cpu_defaults.thread_counts(environ={"TF_NUM_INTRAOP_THREADS": "many"})


def test_late_configure_threads_only_reports():
  tf.constant(1.0) + 1.0  # make sure this process's devices are initialised
  # Another count than the process has (setting the same one again is allowed).
  other = str(tf.config.threading.get_intra_op_parallelism_threads() + 1)
  assert cpu_defaults.configure_threads(environ={"TF_NUM_INTRAOP_THREADS": other}) is None


def test_cpu_defaults_module_does_not_import_tensorflow():
  out = _run_python("""
    import json, sys
    import tfssl.runtime.cpu_defaults
    print(json.dumps("tensorflow" in sys.modules))
  """)
  assert out is False
