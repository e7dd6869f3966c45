"""NumPy transcriptions of the originals' crop samplers, the references tfssl's are held to.

torchvision_window: torchvision's RandomResizedCrop.get_params (transforms.py, 0.29).
byol_window: DeepMind's BYOL, byol/utils/dataset.py `_decode_and_random_crop`.
Both return (top, left, height, width) for an image of `height` x `width`.
"""

import math

import numpy as np


def torchvision_window(rng, height, width, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
  area = height * width
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(10):
    target_area = area * rng.uniform(scale[0], scale[1])
    aspect_ratio = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
    w = int(round(math.sqrt(target_area * aspect_ratio)))
    h = int(round(math.sqrt(target_area / aspect_ratio)))
    if 0 < w <= width and 0 < h <= height:
      return rng.randint(0, height - h + 1), rng.randint(0, width - w + 1), h, w
  in_ratio = width / height
  if in_ratio < min(ratio):
    w, h = width, int(round(width / min(ratio)))
  elif in_ratio > max(ratio):
    h, w = height, int(round(height * max(ratio)))
  else:
    w, h = width, height
  return (height - h) // 2, (width - w) // 2, h, w


def byol_window(rng, height, width, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
  target_area = rng.uniform(scale[0], scale[1]) * height * width
  aspect_ratio = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
  w = min(int(np.round(math.sqrt(target_area * aspect_ratio))), width)
  h = min(int(np.round(math.sqrt(target_area / aspect_ratio))), height)
  return rng.randint(0, height - h + 1), rng.randint(0, width - w + 1), h, w


SAMPLERS = {"torchvision": torchvision_window, "byol": byol_window}
