"""Callbacks for training a task with Keras's `fit` (tfssl/keras_api.py).

`BackupAndRestore` is Keras's, plus what a preemptible machine needs: SIGTERM (and the first
Ctrl-C) ends `fit` at the end of the current batch with a backup of that step, as the trainer does
(runtime/stop_signals.py). Keras's callback already restores a backup when `fit` starts again, and
its `.weights.h5` holds the optimizer's slots and step counter as well as the weights.

Keras restores whole epochs: a run stopped in the middle of an epoch starts that epoch again from
its first batch, with the weights and optimizer of the step it reached.

The callback holds SIGTERM and SIGINT from `on_train_begin` to `on_train_end`. Keras skips
`on_train_end` when `fit` raises; the handlers are then given back by `release_signals()` (or by
the next `fit` with this callback, when it ends).
"""

import keras

from tfssl.runtime import stop_signals


class BackupAndRestore(keras.callbacks.BackupAndRestore):
  """keras.callbacks.BackupAndRestore that also backs up and stops on SIGTERM or Ctrl-C.

  Args (beyond Keras's `backup_dir`, `save_freq`, `double_checkpoint`, `delete_checkpoint`):
    exit_on_signal: after `fit` has stopped on a signal and saved, end the process with the
      signal's conventional code (143 for SIGTERM, 130 for Ctrl-C), as the tfssl commands do;
      False returns from `fit` instead and leaves the signal in `stopped_by`.
  """

  def __init__(self, backup_dir, exit_on_signal=True, **kwargs):
    super().__init__(backup_dir, **kwargs)
    self.exit_on_signal = exit_on_signal
    self.stopped_by = None  # the signal's number once fit stopped on one
    self._signals = None

  def on_train_begin(self, logs=None):
    super().on_train_begin(logs)
    self.stopped_by = None
    self.release_signals()  # a fit that raised left them held
    self._signals = stop_signals.StopSignals().__enter__()

  def on_train_batch_end(self, batch, logs=None):
    super().on_train_batch_end(batch, logs)
    if self._signals is not None and self._signals.received and self.stopped_by is None:
      self.stopped_by = self._signals.received
      self._save_model()
      self.model.stop_training = True

  def on_epoch_end(self, epoch, logs=None):
    if self.stopped_by is None:  # an epoch cut short is not a finished one
      super().on_epoch_end(epoch, logs)

  def release_signals(self):
    """Gives SIGTERM and SIGINT back to the handlers they had before `fit`."""
    if self._signals is not None:
      self._signals.__exit__(None, None, None)
      self._signals = None

  def on_train_end(self, logs=None):
    self.release_signals()
    if self.stopped_by is None:
      super().on_train_end(logs)  # removes the backup when delete_checkpoint (Keras's default)
      return
    if self.exit_on_signal:
      raise SystemExit(stop_signals.exit_code(self.stopped_by))
