"""The tf.distribute strategy named by --strategy, and which worker owns the workdir.

Device configuration in TensorFlow is process-global and frozen once the runtime initialises its
devices (the first op, the first strategy, the first variable). `make_strategy` therefore does the
`--cpu_replicas` split itself, before it builds the strategy, and must be the first thing after
`configure_threads` that touches devices.

Multi-worker training (MultiWorkerMirroredStrategy) runs the same program on every worker and every
worker must take part in each collective, checkpoint saves included. Only the chief's files are
kept: `worker_workdir` hands the other workers a private scratch directory, and
`cleanup_worker_workdir` removes it at the end.
"""

import json
import os

import tensorflow as tf


WORKER_TMP = ".worker_tmp"
STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")


def make_strategy(config) -> tf.distribute.Strategy:
  """The strategy for `config.strategy`, after splitting the CPU for `config.cpu_replicas`."""
  name = config.strategy or "auto"
  if name not in STRATEGIES:
    raise ValueError("unknown --strategy=%s: use one of %s" % (name, ", ".join(STRATEGIES)))
  if config.device == "npu" and name not in ("auto", "default"):
    # The Ascend adapter makes the NPU the default device; tf.distribute knows nothing about it.
    raise ValueError("--device=npu runs one NPU per process: use --strategy=auto or default, "
                     "not %s" % name)
  cpu_devices = split_cpu(config.cpu_replicas or 0)
  if name == "auto":
    if cpu_devices:
      return mirrored_strategy(cpu_devices)
    if config.device != "npu" and tf.config.list_physical_devices("GPU"):
      return mirrored_strategy()
    return tf.distribute.get_strategy()
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "one_device":
    return tf.distribute.OneDeviceStrategy("/gpu:0" if tf.config.list_physical_devices("GPU")
                                           else "/cpu:0")
  if name == "mirrored":
    return mirrored_strategy(cpu_devices or None)
  if name == "multi_worker":
    return _multi_worker_strategy()
  return _tpu_strategy(config.tpu_name)


# One MirroredStrategy per device set and process. Each strategy numbers its collectives (the
# all-reduces of gradients and of synchronized BatchNorm) from the same first keys, so a second
# strategy over the same devices in one process (a second Trainer in a notebook, a test session)
# collides with the first one's collectives: "Shape mismatch in the collective instance 100", after
# which every collective of the process is aborted. Reusing the strategy keeps the keys unique.
_MIRRORED = {}


def mirrored_strategy(devices=None):
  """The process's MirroredStrategy over `devices` (None: every GPU, else the CPU)."""
  key = tuple(devices) if devices else None
  if key not in _MIRRORED:
    _MIRRORED[key] = tf.distribute.MirroredStrategy(list(key) if key else None)
  return _MIRRORED[key]


def split_cpu(replicas: int):
  """Splits the host CPU into `replicas` logical devices; returns their names ([] for 0 or 1)."""
  if replicas < 0:
    raise ValueError("--cpu_replicas=%d: give 0 (leave the CPU alone) or a count >= 2" % replicas)
  if replicas < 2:
    return []
  cpu = tf.config.list_physical_devices("CPU")[0]
  try:
    # Setting the same split again after initialisation is allowed, so a second run in the same
    # process (tests, notebooks) only fails when it asks for a different split.
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(replicas)])
  except RuntimeError as err:
    raise RuntimeError(
        "--cpu_replicas=%d came too late: TensorFlow has already initialised its devices (%s); "
        "call make_strategy before running any op or building any model, or use a fresh process"
        % (replicas, err)) from None
  return ["/cpu:%d" % i for i in range(replicas)]


def parse_tf_config(environ=None):
  """The validated TF_CONFIG dict of a multi-worker run; ValueError with one clear line otherwise."""
  environ = os.environ if environ is None else environ
  text = environ.get("TF_CONFIG")
  hint = ('set TF_CONFIG on every worker, e.g. {"cluster": {"worker": ["host1:12345", '
          '"host2:12345"]}, "task": {"type": "worker", "index": 0}}')
  if not text:
    raise ValueError("--strategy=multi_worker needs the TF_CONFIG environment variable: " + hint)
  try:
    tf_config = json.loads(text)
  except json.JSONDecodeError as err:
    raise ValueError("TF_CONFIG is not valid JSON (%s): %s" % (err, hint)) from None
  cluster = tf_config.get("cluster") if isinstance(tf_config, dict) else None
  task = tf_config.get("task") if isinstance(tf_config, dict) else None
  if not isinstance(cluster, dict) or not (cluster.get("worker") or cluster.get("chief")):
    raise ValueError("TF_CONFIG has no cluster with `worker` (or `chief`) addresses: " + hint)
  if not isinstance(task, dict) or "type" not in task or "index" not in task:
    raise ValueError("TF_CONFIG has no task {\"type\": ..., \"index\": ...}: " + hint)
  jobs = cluster.get(task["type"])
  if not isinstance(jobs, list) or not isinstance(task["index"], int) \
      or not 0 <= task["index"] < len(jobs):
    raise ValueError("TF_CONFIG task %s:%s is not in its cluster %s: fix the task's type or index"
                     % (task["type"], task["index"], sorted(cluster)))
  return tf_config


def _multi_worker_strategy():
  parse_tf_config()
  return tf.distribute.MultiWorkerMirroredStrategy(
      cluster_resolver=tf.distribute.cluster_resolver.TFConfigClusterResolver())


def _tpu_strategy(tpu_name):
  try:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_name)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
  except (ValueError, OSError, RuntimeError, tf.errors.OpError) as err:
    reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
    raise ValueError("--strategy=tpu could not reach the TPU %r (%s): pass --tpu_name=<TPU name or "
                     "grpc://host:port>, or run on a TPU VM" % (tpu_name, reason)) from None
  return tf.distribute.TPUStrategy(resolver)


def task_of(strategy):
  """(task_type, task_id, cluster_spec_dict) of a multi-worker strategy, else None."""
  if isinstance(strategy, tf.distribute.TPUStrategy):
    return None  # one client drives every TPU host, so it is the only writer
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return None
  return resolver.task_type, int(resolver.task_id or 0), resolver.cluster_spec().as_dict()


def is_chief(strategy) -> bool:
  """True on a single worker; with several, the `chief` task, or worker 0 when there is none."""
  task = task_of(strategy)
  if task is None:
    return True
  task_type, task_id, cluster = task
  if task_type == "chief":
    return True
  return task_type == "worker" and task_id == 0 and "chief" not in cluster


def worker_workdir(workdir: str, strategy) -> str:
  """Where this worker writes checkpoints and exports: the workdir on the chief, scratch elsewhere."""
  if is_chief(strategy):
    return workdir
  scratch = _scratch_dir(workdir, strategy)
  tf.io.gfile.makedirs(scratch)
  return scratch


def cleanup_worker_workdir(workdir: str, strategy) -> None:
  """Removes a non-chief worker's scratch directory (a no-op on the chief)."""
  if is_chief(strategy):
    return
  scratch = _scratch_dir(workdir, strategy)
  if tf.io.gfile.exists(scratch):
    tf.io.gfile.rmtree(scratch)
  if "://" not in workdir:
    # rmdir only removes an empty directory, so a worker still writing its own scratch is safe.
    try:
      os.rmdir(os.path.join(workdir, WORKER_TMP))
    except OSError:
      pass


def _scratch_dir(workdir, strategy):
  task_type, task_id, _ = task_of(strategy)
  return os.path.join(workdir, WORKER_TMP, "%s_%d" % (task_type, task_id))
