"""Photo-sized JPEG shards for the benchmarks that need them (gpu_check.py, throughput.py
--jpeg_photos): no data set of that size ships with the machine, so they are drawn here.

Each photo is a colour gradient with a disc and sensor-like noise, saved at JPEG quality 90: at
500x375 about 60 KB, close to ImageNet's typical file, so decoding costs what it costs there.
"""

import os


def make_shards(folder, count, height_width, seed=0):
  """`count` synthetic JPEG photos of height_width in 10 class folders, converted to TFRecords
  under <folder>/records (8 training shards, 1 validation shard); returns that folder."""
  import numpy as np
  from PIL import Image
  from tfssl.tools import image_sources, tfrecord_builder
  rng = np.random.RandomState(seed)
  photos = os.path.join(folder, "photos")
  h, w = height_width
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
  for i in range(count):
    label = i % 10
    os.makedirs(os.path.join(photos, "class_%d" % label), exist_ok=True)
    base = rng.uniform(0, 255, size=3)
    slope = rng.uniform(-0.5, 0.5, size=(2, 3))
    image = base + yy[..., None] * slope[0] + xx[..., None] * slope[1]
    cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.1, 0.4) * min(h, w)
    disc = ((xx - cx) ** 2 + (yy - cy) ** 2) < r ** 2
    image[disc] = rng.uniform(0, 255, size=3)
    image += rng.normal(0, 12, size=image.shape)
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(
        os.path.join(photos, "class_%d" % label, "%05d.jpg" % i), quality=90)
  source = image_sources.folder_source(photos, name="jpeg_shards")
  records = os.path.join(folder, "records")
  tfrecord_builder.build(source, records, train_shards=8, validation_shards=1,
                         log=open(os.devnull, "w"))
  return records
