"""`--dataset=tfds:<name>`: a tensorflow_datasets image-classification dataset in the registry.

`--dataset_dir` is the tfds data_dir (empty: tfds's default); a dataset not there yet is downloaded
and prepared on first read. Logical splits follow the sharded datasets' idea, in examples instead of
shards: with n examples in tfds's `train`, `val` is its last max(1, ceil(n * 40 / 1024)) examples,
`train` the ones before, `trainval` all of `train`, and `test` tfds's `test` split (or
`validation` where the dataset has no `test`). Images are decoded after the record shuffle, so the
shuffle buffer holds encoded bytes; grayscale images become 3 channels.
"""

import tensorflow as tf

from tfssl.data import dataset_spec


class TfdsDataset(dataset_spec.DatasetSpec):

  def __init__(self, tfds_name, data_dir=None):
    try:
      import tensorflow_datasets as tfds
    except ImportError:
      raise ValueError("--dataset=tfds:%s needs tensorflow-datasets: pip install "
                       "tensorflow-datasets" % tfds_name) from None
    self._tfds = tfds
    self.name = "tfds:" + tfds_name
    try:
      self._builder = tfds.builder(tfds_name, data_dir=data_dir or None)
    except tfds.core.registered.DatasetNotFoundError:
      # tfds's own message lists every dataset it knows: hundreds of lines.
      raise ValueError("tensorflow_datasets has no dataset %r: check the name after tfds: "
                       "(tfds.list_builders() lists them)" % tfds_name) from None
    info = self._builder.info
    if not info.supervised_keys:
      raise ValueError("tfds:%s has no (image, label) supervised keys: tfssl reads image "
                       "classification datasets only" % tfds_name)
    self._image_key, self._label_key = info.supervised_keys[:2]
    self.num_classes = info.features[self._label_key].num_classes
    self.label_offset = 0
    self.classes = info.features[self._label_key].names
    self._table = None

  def _splits(self):
    """{logical split: (tfds split string, count)}; split sizes are known once prepared."""
    if self._table is None:
      if not self._builder.info.splits:
        self._builder.download_and_prepare()
      self._table = self._logical_splits(self._builder.info)
    return self._table

  def _logical_splits(self, info):
    if "train" not in info.splits:
      raise ValueError("%s has no `train` split for tfssl's train/val/trainval splits; build "
                       "TFRecords with python -m tfssl.tools.build_tfrecords instead" % self.name)
    n = info.splits["train"].num_examples
    cut = n - dataset_spec.val_shard_count(n)  # the sharded datasets' share, in examples
    test = "test" if "test" in info.splits else "validation"
    return {
        "train": ("train[:%d]" % cut, cut),
        "val": ("train[%d:]" % cut, n - cut),
        "trainval": ("train", n),
        "test": (test, info.splits[test].num_examples if test in info.splits else 0),
    }

  def count(self, split):
    dataset_spec.check_split(split, self.name)
    return self._splits()[split][1]

  def files(self, split):
    raise ValueError("%s is read through tensorflow_datasets and has no shard file list; use "
                     "count(split), or build TFRecords with python -m tfssl.tools.build_tfrecords"
                     % self.name)

  def read(self, split, is_training, input_context=None, seed=None, skip_corrupt=False, subset=None):
    del subset  # training_subset refuses tfds datasets with a clear error
    dataset_spec.check_split(split, self.name)
    tfds = self._tfds
    self._builder.download_and_prepare()
    table = self._splits()
    read_config = tfds.ReadConfig(input_context=input_context, shuffle_seed=seed,
                                  interleave_cycle_length=dataset_spec.FILE_CYCLE_LENGTH)
    examples = self._builder.as_dataset(
        split=table[split][0], shuffle_files=is_training, read_config=read_config,
        decoders={self._image_key: tfds.decode.SkipDecoding()})
    if is_training:
      examples = examples.repeat().shuffle(dataset_spec.SHUFFLE_BUFFER, seed=seed)
    image_feature = self._builder.info.features[self._image_key]

    def decode(example):
      image = image_feature.decode_example(example[self._image_key])
      if image.shape[-1] == 1:
        image = tf.tile(image, [1, 1, 3])
      image = tf.cast(image, tf.uint8)
      image.set_shape([None, None, 3])
      return {"image": image, "label": tf.cast(example[self._label_key], tf.int32)}

    if skip_corrupt:
      # tfds checks its own files; what remains is an image that does not decode.
      return examples.map(decode, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors(
          log_warning=True)
    return examples.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
