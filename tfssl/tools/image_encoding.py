"""One Item -> the bytes to store: PNG for pixel arrays; RGB JPEG for files, as slim's builder did.

An RGB JPEG is stored as it is. PNG, GIF, BMP, grayscale and CMYK files are decoded in full and
re-encoded as RGB JPEG, so every reader can use one decoder with 3 channels.
"""

import io
from typing import NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError

# slim used quality 100; 95 keeps the re-encoding loss invisible at a third of the size.
JPEG_QUALITY = 95


class BadImage(Exception):
  """An input image that cannot be read; the message is the reason."""


class Encoded(NamedTuple):
  data: bytes
  fmt: str
  height: int
  width: int
  channels: int


def _encode_pixels(pixels):
  pixels = np.asarray(pixels, np.uint8)
  channels = 1 if pixels.ndim == 2 else pixels.shape[2]
  image = Image.fromarray(pixels[..., 0] if channels == 1 and pixels.ndim == 3 else pixels)
  out = io.BytesIO()
  image.save(out, format="PNG")
  return Encoded(out.getvalue(), "PNG", pixels.shape[0], pixels.shape[1], channels)


def _to_rgb(image):
  if image.mode in ("I;16", "I;16B", "I;16L", "I"):
    # 16/32-bit grayscale: convert("RGB") would clip, so scale to 8 bits first.
    wide = np.asarray(image, np.float64)
    scale = 255.0 / 65535.0 if wide.max(initial=0) > 255 else 1.0
    image = Image.fromarray(np.clip(np.round(wide * scale), 0, 255).astype(np.uint8))
  return image.convert("RGB")


def _encode_file(path):
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise BadImage(f"cannot read: {e.strerror or e}") from e
  if not data:
    raise BadImage("empty file")
  try:
    with Image.open(io.BytesIO(data)) as image:
      image.load()  # a full decode: a truncated or corrupt file fails here, not at training time
      width, height = image.size
      if image.format == "JPEG" and image.mode == "RGB":
        return Encoded(data, "JPEG", height, width, 3)
      out = io.BytesIO()
      _to_rgb(image).save(out, format="JPEG", quality=JPEG_QUALITY)
  except UnidentifiedImageError:
    # Pillow's own message names an in-memory buffer address, useless to a user and not repeatable.
    raise BadImage("not a readable JPEG, PNG, GIF or BMP image") from None
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    raise BadImage(str(e) or type(e).__name__) from e
  return Encoded(out.getvalue(), "JPEG", height, width, 3)


def encode_item(item):
  """The Encoded record content for `item`; BadImage with the reason when it cannot be read."""
  if item.pixels is not None:
    return _encode_pixels(item.pixels)
  return _encode_file(item.path)
