"""The estimator-style loop: workdir, checkpoints, resume, summaries, evaluation and export.

One Trainer drives every task through the Task contract (tfssl/tasks/base.py); nothing here knows
a method. The workdir holds:
  ckpt-<step>.*, checkpoint      tf.train.CheckpointManager files (the newest complete one wins)
  task_info.json                 what the checkpoints are (task, architecture, ...): a guard
  flags.json                     the Config of the newest run
  train/, eval/                  TensorBoard summaries
  eval_results.json              one entry per evaluated checkpoint (and kNN monitor results)
  export/<step>/                 SavedModels written by --run_eval
  TRAINING_IS_DONE               written when training reached its last step
  TRAINING_LOCK                  held by the training run (runtime/workdir_lock.py)

A run that cannot go on keeps what it had: a step whose loss is not finite stops it before anything
is saved from that state (tasks/step_guard.py), and SIGTERM or Ctrl-C saves the step reached before
it exits (runtime/stop_signals.py); both raise TrainingStopped (training_stops.py), which names
the exit code.
"""

import os
import time

from absl import logging
import tensorflow as tf

from tfssl.data import datasets
from tfssl.data import preprocess
from tfssl.keras_api import create_task, training_plan
from tfssl.models.export import save_export
from tfssl.models.representation import from_checkpoint, weights_checkpoint
from tfssl.runtime import stop_signals
from tfssl.runtime.session import start_runtime
from tfssl.runtime.strategy import task_of
from tfssl.training_stops import (NONFINITE_EXIT_CODE, TrainingStopped, diverged, hold_workdir,
                                  nonfinite_variables, stopped_by_signal)
from tfssl.workdir import Workdir, WorkdirError

DONE_FILE = "TRAINING_IS_DONE"


class Trainer:
  """Builds the strategy, the data, the task and its optimizer, and runs training or evaluation."""

  def __init__(self, config, runtime=None):
    # Threads, --cpu_replicas, strategy, NPU and precision, in the order TensorFlow needs.
    self.runtime = runtime or start_runtime(config)
    if self.runtime.precision_reason:
      # --precision=auto: the run's first line says what it chose; flags.json records it, so a
      # resumed run keeps it.
      logging.info("Precision %s (--precision=auto: %s).", self.runtime.precision,
                   self.runtime.precision_reason)
    config = config.replace(precision=self.runtime.precision)
    self.config = config
    self.strategy = self.runtime.strategy
    self.chief = self.runtime.chief
    self.checkpoint_settings = self.runtime.checkpoints
    self.dataset_spec = datasets.get_dataset(config.dataset, config.dataset_dir)
    self.workdir = Workdir(self.runtime.workdir or config.workdir, config)
    plan = training_plan(config, self.dataset_spec)
    self.plan = plan
    self.subset, self.steps_per_epoch, self.total_steps = (plan.subset, plan.steps_per_epoch,
                                                           plan.total_steps)
    self.task = None
    self.optimizer = None
    self._eval_step = None  # tf.functions traced on first use (evaluate, knn_monitor)
    self._stop_vote = None  # with several workers: this worker's SIGTERM vote (_make_train_function)
    self._lock = None  # the workdir's lock while the chief trains
    self._knn_representation = None

  # ---- data ----
  def input_fn(self, split, is_training, preprocessing=None, batch_size=None):
    subset = self.subset if split == self.config.train_split else None
    return datasets.make_input_fn(self.config, split, is_training, batch_size=batch_size,
                                  preprocessing=preprocessing, subset=subset,
                                  dataset=self.dataset_spec)

  def distributed_dataset(self, split, is_training, preprocessing=None, batch_size=None):
    fn = self.input_fn(split, is_training, preprocessing, batch_size)
    return self.strategy.distribute_datasets_from_function(fn)

  # ---- building ----
  def build(self):
    """Task, optimizer and checkpoint in the strategy scope; variables created on a tiny batch."""
    if self.task is not None:
      return self.task
    with self.strategy.scope():
      # The same task, optimizer and train_step as `fit` uses (tfssl/keras_api.py).
      self.task = create_task(self.config, self.dataset_spec, self.plan)
      self.optimizer = self.task.optimizer
      self.checkpoint = weights_checkpoint(self.task, optimizer=self.optimizer)
    return self.task

  def restored_representation(self):
    """The representation of the newest checkpoint in --workdir, restored into the rebuilt task
    (tfssl.models.representation); ValueError when the workdir has no checkpoint."""
    path = tf.train.latest_checkpoint(self.config.workdir) if self.config.workdir else None
    if not path:
      raise ValueError("%s has no checkpoint: train there first, or give an export"
                       % self.config.workdir)
    self.build()
    return from_checkpoint(self.task, path, self.config)

  @property
  def step(self):
    return int(self.optimizer.iterations.numpy())

  # ---- training ----
  def train(self):
    """Trains to the last step, resuming from the workdir's newest checkpoint; TrainingStopped
    when a step is not finite or a signal stopped the run (after saving)."""
    # Built (data read, export loaded) before the workdir is claimed: a run that cannot start
    # leaves no task_info.json behind.
    self.build()
    # One training run per workdir: the chief holds the lock (the other workers write scratch
    # directories of their own) from before anything is written until the run ends.
    lock = self._lock = hold_workdir(self.workdir, self.chief, self.strategy,
                                     multi_worker=bool(task_of(self.strategy)))
    try:
      with stop_signals.StopSignals() as signals:
        return self._train(signals)
    finally:
      if lock is not None:
        lock.release()
      self._lock = None

  def _train(self, signals):
    cfg = self.config
    self.workdir.claim()
    manager = self.workdir.checkpoint_manager(self.checkpoint, self.checkpoint_settings.keep_checkpoint_max)
    restored = self.workdir.restore_latest(self.checkpoint)
    if restored:
      logging.info("Resumed from %s at step %d", restored, self.step)
    self.workdir.write_flags()
    if self.step >= self.total_steps:
      logging.info("Global step %d already reached --train_steps/--epochs (%d); nothing to train.",
                   self.step, self.total_steps)
      self.workdir.mark_done()
      return self._metric_results()

    dataset = self.distributed_dataset(cfg.train_split, is_training=True)
    iterator = iter(dataset)
    run_steps = self._make_train_function()
    guard = self.task.step_guard
    images_per_step = cfg.batch_size
    log_every = max(1, cfg.log_every_steps)
    knn_every = int(round(cfg.knn_every_epochs * self.steps_per_epoch)) if cfg.knn_every_epochs else 0
    save = self.checkpoint_settings
    progress_every = float(cfg.progress_every_secs or 0)
    last_save, last_save_step = time.time(), self.step
    start_step, start_time = self.step, time.time()
    # Training time so far without the kNN monitor's own, for curves against pretraining minutes;
    # a resumed run continues from the last monitored value (what ran after it is not counted).
    trained_before = max([r.get("train_seconds", 0.0) for r in self.workdir.read_results()
                          if r.get("kind") == "knn"] + [0.0])
    monitor_seconds = 0.0
    window_step, window_time = start_step, start_time
    last_line, first_call = start_time, True
    self.task.reset_metrics()
    logs = {}
    last_knn_step = None
    while self.step < self.total_steps:
      step = self.step
      if signals.received and self._stop_vote is None:
        self._stop_on_signal(manager, signals)  # it came during a save, a log or the kNN monitor
      # Stop each execution at the next log, kNN or final step so they happen on time.
      bounds = [self.total_steps, (step // log_every + 1) * log_every]
      if knn_every:
        bounds.append((step // knn_every + 1) * knn_every)
      if save.save_every_steps:
        bounds.append(last_save_step + save.save_every_steps)
      n = max(1, min(cfg.steps_per_execution, min(bounds) - step))
      if signals.received and self._stop_vote is not None:
        self._stop_vote.assign(1.0)  # the other workers learn it in the next step's all-reduce
      stop_agreed = float(run_steps(iterator, tf.constant(n, tf.int32))) > 0
      step = self.step
      now = time.time()
      if guard.active and bool(guard.should_stop()):
        raise self._diverged(manager)
      if stop_agreed or (signals.received and self._stop_vote is None):
        self._stop_on_signal(manager, signals)
      log_due = step % log_every == 0 or step >= self.total_steps
      if first_call:
        first_call = False
        logging.info("First step done after %s (tracing and compiling the training step); "
                     "%d steps to go.", _hms(now - start_time), self.total_steps - step)
        if not log_due:  # rates measured from here leave the compilation out
          window_step, window_time = step, now
        last_line = now
      if log_due:
        logs = self._metric_results()
        logs["learning_rate"] = float(self.optimizer.learning_rate.numpy()) if hasattr(
            self.optimizer.learning_rate, "numpy") else float(self.optimizer.learning_rate)
        if guard.mode == "skip":
          logs["skipped_steps"] = int(guard.nonfinite_steps.numpy())
        rate = (step - window_step) / max(now - window_time, 1e-9)
        logs["steps_per_sec"] = rate
        logs["images_per_sec"] = rate * images_per_step
        eta = (self.total_steps - step) / max(rate, 1e-9)
        logging.info("step %d/%d  %s  eta %s", step, self.total_steps,
                     "  ".join("%s %.4g" % kv for kv in sorted(logs.items())), _hms(eta))
        self._write_summaries("train", step, logs)
        self.task.reset_metrics()
        window_step, window_time = step, now
        last_line = now
      elif progress_every and now - last_line >= progress_every:
        # Between the --log_every_steps lines: a short line every --progress_every_secs.
        rate = (step - window_step) / max(now - window_time, 1e-9)
        loss = self.task.loss_tracker.result()
        logging.info("%d/%d steps (epoch %.2f), loss %.4g, %.1f images/s, eta %s", step,
                     self.total_steps, step / self.steps_per_epoch, float(loss),
                     rate * images_per_step, _hms((self.total_steps - step) / max(rate, 1e-9)))
        last_line = now
      # Every knn_every steps and at the last one, so a curve ends where the run's export is.
      # (A step skipped as not finite leaves the step where it was: monitor it once.)
      knn_due = knn_every and (step % knn_every == 0 or step >= self.total_steps)
      if knn_due and step != last_knn_step:
        last_knn_step = step
        self.knn_monitor(step, train_seconds=trained_before + now - start_time - monitor_seconds)
        monitor_seconds += time.time() - now
      # Save by steps (the NPU run config) or by seconds (--save_checkpoints_secs).
      due = (step - last_save_step >= save.save_every_steps if save.save_every_steps
             else time.time() - last_save >= (save.save_every_secs or 600))
      if due and step < self.total_steps:
        self._save(manager, step)
        last_save, last_save_step = time.time(), step
    self._save(manager, self.step)
    self.workdir.mark_done()
    logging.info("Training done at step %d in %s.", self.step, _hms(time.time() - start_time))
    return logs

  def close(self):
    """Removes a non-chief worker's scratch workdir and closes the NPU, if any."""
    self.runtime.close()

  def _stop_on_signal(self, manager, signals):
    """Saves the step reached and raises TrainingStopped with the signal's exit code."""
    self._save(manager, self.step)
    raise stopped_by_signal(signals, self.step, self.total_steps, manager.latest_checkpoint)

  def _save(self, manager, step):
    """A checkpoint at `step`, refused (TrainingStopped) when a value in it is not finite, and
    (WorkdirError) when another run has taken the workdir's lock over."""
    if self._lock is not None and not self._lock.held:
      raise WorkdirError("another training run took over --workdir %s (its TRAINING_LOCK); this "
                         "run stops without saving" % self.workdir.path)
    bad = nonfinite_variables(self.task.weights + self.optimizer.variables)
    if bad:
      raise self._diverged(manager, "%d variables hold values that are not finite (%s first)"
                           % (len(bad), bad[0]))
    return self.workdir.save(manager, step)

  def _diverged(self, manager, what=None):
    return diverged(self.task.step_guard, self.step, manager.latest_checkpoint, what)

  def _make_train_function(self):
    """run_steps(iterator, n) -> float: n steps, fewer where the non-finite guard stops the run or
    (several workers) where a worker received SIGTERM; returns the workers' agreed stop vote."""
    cfg = self.config
    step_fn = self.task.train_step
    if cfg.jit_compile:
      step_fn = tf.function(step_fn, jit_compile=True)
    guard = self.task.step_guard
    # Several workers must save at the same step: each worker's SIGTERM vote (a variable of this
    # worker, outside the strategy) is summed in every step, so all of them see it in the same
    # one. One worker alone needs no vote: it stops after the execution it is in.
    self._stop_vote = tf.Variable(0.0, trainable=False) if task_of(self.strategy) else None
    vote = self._stop_vote

    def replica_step(batch):
      step_fn(batch)
      if vote is None:
        return tf.constant(0.0)
      return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM,
                                                            tf.identity(vote))

    @tf.function
    def run_steps(iterator, n):
      agreed = tf.constant(0.0)
      for _ in tf.range(n):
        agreed = self.strategy.experimental_local_results(
            self.strategy.run(replica_step, args=(next(iterator),)))[0]
        if guard.active and guard.should_stop():
          break
        if agreed > 0.0:
          break
      return agreed

    return run_steps

  def _metric_results(self, metrics=None):
    out = {}
    for metric in self.task.metrics if metrics is None else metrics:
      result = metric.result()
      if isinstance(result, dict):
        out.update({k: float(v) for k, v in result.items()})
      else:
        out[metric.name] = float(result)
    return out

  # ---- evaluation ----
  def evaluate(self, steps=None):
    """One pass over val_split with the task's test_step; returns the metrics."""
    cfg = self.config
    dataset = self.distributed_dataset(cfg.val_split, is_training=False)
    steps = steps or cfg.eval_steps
    if self._eval_step is None:
      # Traced once per trainer: --run_eval evaluates every checkpoint with the same graph.
      self._eval_step = tf.function(
          lambda batch: self.strategy.run(self.task.test_step, args=(batch,)))
    self.task.reset_metrics()
    for i, batch in enumerate(dataset):
      if steps and i >= steps:
        break
      self._eval_step(batch)
    return self._metric_results(self.task.eval_metrics)

  def run_eval(self):
    """The original's evaluator: evaluate and export every new checkpoint until training is done."""
    cfg = self.config
    self.build()
    done_path = os.path.join(cfg.workdir, DONE_FILE)
    evaluated = {r.get("step") for r in self.workdir.read_results() if r.get("kind") == "eval"}
    last = None
    for path in tf.train.checkpoints_iterator(cfg.workdir, min_interval_secs=1,
                                              timeout=cfg.eval_timeout_secs,
                                              timeout_fn=lambda: tf.io.gfile.exists(done_path)):
      self.checkpoint.restore(path).expect_partial()
      step = self.step
      last = step
      if step in evaluated:
        continue
      metrics = self.evaluate()
      logging.info("eval at step %d: %s", step, "  ".join("%s %.4g" % kv for kv in sorted(metrics.items())))
      self._write_summaries("eval", step, metrics)
      export_dir = self.export(step)
      self.workdir.append_result(dict(kind="eval", step=step, checkpoint=path, export=export_dir, **metrics))
      evaluated.add(step)
      if tf.io.gfile.exists(done_path) and path == tf.train.latest_checkpoint(cfg.workdir):
        break
    return last

  def export(self, step):
    export_dir = os.path.join(self.config.workdir, "export", str(step))
    if self.chief:
      chain, view_flags = preprocess.eval_view(self.config)
      save_export(self.task.export_module(), export_dir,
                  eval_view={"chain": chain, "flags": view_flags} if chain else None)
      logging.info("Exported %s", export_dir)
    return export_dir

  def knn_monitor(self, step, train_seconds=None):
    """Weighted kNN of the current representation on train (bank) and val (queries); the result
    entry also records `train_seconds`, the training time that reached `step`."""
    from tfssl.evaluation import knn
    cfg = self.config
    # The one rule for the evaluation view (preprocess.eval_view): --knn_preprocessing, else the
    # evaluation chain of --preprocessing (rotate left out, augmented views replaced by their
    # eval op), as exports record it and knn_eval / linear_eval read it.
    chain, _ = preprocess.eval_view(cfg)
    if self._knn_representation is None:
      # Traced once per trainer, not at every monitored step.
      self._knn_representation = tf.function(
          lambda images: self.task.representation(images, training=False),
          reduce_retracing=True)  # the last, smaller batches of bank and queries
    rep = self._knn_representation
    bank_ds = self.input_fn(cfg.train_split, False, preprocessing=chain)(None)
    if cfg.knn_max_train_examples:
      bank_ds = bank_ds.unbatch().take(cfg.knn_max_train_examples).batch(cfg.eval_batch_size)
    query_ds = self.input_fn(cfg.val_split, False, preprocessing=chain)(None)
    result = knn.knn_accuracy(rep, bank_ds, query_ds, cfg.knn_end_point,
                              self.dataset_spec.num_classes, k=cfg.knn_k,
                              temperature=cfg.knn_temperature, combine=cfg.combine_patches)
    metrics = {"knn_top1": float(result["top1"]), "knn_top5": float(result["top5"])}
    logging.info("kNN at step %d: %s", step, metrics)
    self._write_summaries("eval", step, metrics)
    entry = dict(kind="knn", step=step, end_point=cfg.knn_end_point, **metrics)
    if train_seconds is not None:
      entry["train_seconds"] = round(float(train_seconds), 1)
    self.workdir.append_result(entry)
    return metrics

  def _write_summaries(self, run, step, metrics):
    """TensorBoard scalars of `metrics` at `step` in the workdir's `run` (train/ or eval/)."""
    writer = self.workdir.summary_writer(run)
    with writer.as_default(step=step):
      for key, value in metrics.items():
        tf.summary.scalar(key, value)
    writer.flush()


def _hms(seconds):
  seconds = int(max(0, seconds))
  return "%d:%02d:%02d" % (seconds // 3600, seconds // 60 % 60, seconds % 60)


__all__ = ["Trainer", "TrainingStopped", "WorkdirError", "DONE_FILE", "NONFINITE_EXIT_CODE"]
