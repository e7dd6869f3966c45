"""Reading TFRecord shards so that a corrupt one is named, or skipped with --skip_corrupt_records.

TensorFlow's own errors name neither the shard nor the record ("truncated record at 468"), so:
- A read error (a truncated or garbage file) ends that shard's stream early: TFRecordDataset moves
  on to the next file after an error, and ignore_errors() keeps it going. Counting the framed bytes
  read (8 length + 4 crc + data + 4 crc per record) against the file's size shows the loss.
- Records are parsed in small chunks, each inside its own dataset with ignore_errors(); a record
  index that goes missing there is a record that did not parse or decode, and the chunk still
  holds the shard name of every record.
Without skipping, either case stops the run with an error whose message names the shard file.
With skipping, each loss is logged to stderr. Both checks work on chunks of records: per-record
tf.data stages cost more than decoding a small image.
"""

import sys

import tensorflow as tf

READ_BUFFER_BYTES = 8 << 20  # the original's TFRecordDataset buffer
READ_CHUNK = 256
PARSE_CHUNK = 64
_FRAMING_BYTES = 16
_FIX = "rebuild that shard (python -m tfssl.tools.build_tfrecords), or pass --skip_corrupt_records"


def _check_or_log(ok, template, values, skip):
  """An op that fails with the formatted message when not ok, or (skip) logs it to stderr."""
  message = lambda: tf.strings.format(template, values)
  if not skip:
    return tf.debugging.Assert(ok, [message()])

  def log():
    with tf.control_dependencies([tf.print(message(), output_stream=sys.stderr)]):
      return tf.constant(False)

  return tf.cond(ok, lambda: tf.constant(True), log)


def shard_records(filename, size, skip_corrupt):
  """(serialized record, filename) pairs of one shard; a short read fails or is logged (skip)."""
  chunks = tf.data.TFRecordDataset(filename, buffer_size=READ_BUFFER_BYTES).ignore_errors()
  chunks = chunks.batch(READ_CHUNK).map(lambda records: (records, False))
  end = tf.data.Dataset.from_tensors((tf.zeros([0], tf.string), True))

  def count_bytes(total, item):
    records, is_end = item
    framed = tf.strings.length(records) + _FRAMING_BYTES
    total += tf.reduce_sum(tf.cast(framed, tf.int64))
    return total, (records, total, is_end)

  def check_end(records, total, is_end):
    ok = tf.logical_or(tf.logical_not(is_end), tf.equal(total, size))
    template = ("tfssl: TFRecord shard {} is truncated or corrupt (read {} of {} bytes); "
                + ("its unreadable rest was skipped" if skip_corrupt else _FIX))
    check = _check_or_log(ok, template, [filename, total, size], skip_corrupt)
    with tf.control_dependencies([check]):
      return tf.identity(records), tf.fill(tf.shape(records), filename)

  stream = chunks.concatenate(end).scan(tf.constant(0, tf.int64), count_bytes).map(check_end)
  return stream.unbatch()


def read_shards(files, sizes, ordered, skip_corrupt, cycle_length=16, shuffle_files_seed=None,
                repeat=False):
  """(record, filename) pairs of the given shards.

  ordered: one file after the other, records in file order. Else the file list is shuffled (each
  pass anew), optionally repeated forever, and up to `cycle_length` files are read interleaved.
  """
  shards = tf.data.Dataset.from_tensor_slices(
      (tf.constant(list(files), tf.string), tf.constant([int(s) for s in sizes], tf.int64)))
  read = lambda f, s: shard_records(f, s, skip_corrupt)
  if ordered:
    return shards.flat_map(read)
  shards = shards.shuffle(len(files), seed=shuffle_files_seed, reshuffle_each_iteration=True)
  if repeat:
    shards = shards.repeat()
  return shards.interleave(read, cycle_length=min(cycle_length, len(files)), block_length=1,
                           num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _placeholder(spec):
  return tf.nest.map_structure(
      lambda s: tf.zeros([0 if d is None else d for d in s.shape], s.dtype), spec)


def parse_records(records, parse_fn, skip_corrupt):
  """(record, filename) -> parse_fn(record), in order; a record that does not parse fails naming
  its shard, or is dropped and logged (skip)."""
  probe = tf.data.Dataset.from_tensors(tf.constant("")).map(parse_fn)
  end_example = _placeholder(probe.element_spec)

  def parse_chunk(serialized, filenames):
    n = tf.shape(serialized, out_type=tf.int64)[0]
    indexed = tf.data.Dataset.from_tensor_slices((serialized, tf.range(n)))
    parsed = indexed.map(lambda record, i: (parse_fn(record), i)).ignore_errors()
    end = tf.data.Dataset.from_tensors((end_example, n))

    def check_gap(expected, item):
      example, index = item
      lost = index - expected
      filename = filenames[tf.minimum(expected, n - 1)]
      if skip_corrupt:
        template = "tfssl: skipped {} corrupt record(s) of {} (they did not parse or decode)"
        values = [lost, filename]
      else:
        template = "tfssl: a record of TFRecord shard {} does not parse or decode; " + _FIX
        values = [filename]
      with tf.control_dependencies([_check_or_log(tf.equal(lost, 0), template, values,
                                                  skip_corrupt)]):
        return index + 1, (tf.nest.map_structure(tf.identity, example), index)

    def is_record(example, index):
      return index < n

    def drop_index(example, index):
      return example

    checked = parsed.concatenate(end).scan(tf.constant(0, tf.int64), check_gap)
    return checked.filter(is_record).map(drop_index)

  # Each chunk is emitted whole before the next (block_length = chunk), so order is kept.
  return records.batch(PARSE_CHUNK).interleave(
      parse_chunk, block_length=PARSE_CHUNK, num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True)
