"""Image files -> uint8 RGB crops, in a tf.data pipeline, for extraction and prediction.

Every image is decoded by `image_decode` (PIL: JPEG, PNG, GIF, BMP, TIFF, WebP and more) into the
upright 8-bit RGB picture a viewer shows: EXIF orientation applied, first frame, any mode and bit
depth converted by that module's rules. The shorter side is resized to `resize_to` (bilinear,
antialiased) and the center `image_size` x `image_size` crop is kept, as the extractors expect; an
extractor's `geometry` (`geometry.py`: the ViT families' reference resize, rounding and crop or
stretch) replaces that. An unreadable, truncated or empty file does not stop the pipeline: its
example carries `ok = False` and the error text, and the caller decides (skip it, listed, or stop).
"""

import concurrent.futures
import threading
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf
from absl import logging
from PIL import Image

from memjax.errors import InputError
from memjax.features import image_decode
from memjax.features.geometry import Geometry
from memjax.runtime.host_memory import available_memory_bytes


def resize_and_crop(image: Image.Image, resize_to: int, image_size: int) -> np.ndarray:
  """Shorter side to `resize_to` (bilinear, antialiased), then the center square crop.

  Returns:
    uint8 [image_size, image_size, 3] for an RGB `image`.
  """
  width, height = image.size
  scale = resize_to / min(width, height)
  size = (max(resize_to, round(width * scale)), max(resize_to, round(height * scale)))
  image = image.resize(size, Image.Resampling.BILINEAR)
  left, top = (size[0] - image_size) // 2, (size[1] - image_size) // 2
  return np.asarray(image.crop((left, top, left + image_size, top + image_size)))


def load_image(
  path: str, resize_to: int, image_size: int, geometry: Geometry | None = None
) -> np.ndarray:
  """Decodes (upright 8-bit RGB, see `image_decode`), resizes (shorter side) and center-crops
  one image file.

  A `geometry` (an extractor's, `geometry.Geometry`) replaces `resize_and_crop` by its own
  resize filter, size rounding and crop (or stretch).

  Returns:
    uint8 [image_size, image_size, 3] RGB.

  Raises:
    UnreadableImageError for an empty file, an unknown format or corrupt data; OSError for a file
    the OS cannot read. The pipeline turns them into `ok=False`.
  """
  image = image_decode.decode_image(path)
  if geometry is not None:
    return geometry.apply(image)
  return resize_and_crop(image, resize_to, image_size)


def _pixel_dtype(geometry: Geometry | None) -> np.dtype:
  """uint8, or float32 for a geometry that resizes in float (DINOv3's)."""
  return np.dtype(np.uint8 if geometry is None else geometry.pixels)


def _safe_loader(resize_to: int, image_size: int, geometry: Geometry | None = None):
  blank = np.zeros((image_size, image_size, 3), _pixel_dtype(geometry))

  def load(path: bytes):
    try:
      return load_image(path.decode(), resize_to, image_size, geometry), True, b''
    except Exception as e:  # any decoder failure is reported per image, not raised
      return blank, False, image_decode.describe_error(e).encode()

  return load


def image_batches(
  paths: Sequence[str],
  *,
  batch_size: int,
  resize_to: int,
  image_size: int,
  start: int = 0,
  geometry: Geometry | None = None,
) -> Iterator[dict[str, np.ndarray]]:
  """Batches of decoded images for `paths[start:]`, in order; the last batch is padded.

  `geometry`: the extractor's resize / crop (`load_image`); None: `resize_and_crop`.

  Yields:
    dicts with `image` uint8 (float32 for a float geometry) [B, S, S, 3], `ok` bool [B]
    (False for unreadable files and for padding), `error` bytes [B], `index` int64 [B]
    (position in `paths`, -1 for padding).
  """
  paths = list(paths)[start:]
  if not paths:
    return
  pad = -len(paths) % batch_size
  index = np.concatenate([np.arange(start, start + len(paths)), np.full(pad, -1)])
  padded = paths + paths[:1] * pad
  load = _safe_loader(resize_to, image_size, geometry)
  dtype = tf.as_dtype(_pixel_dtype(geometry))

  def decode(i, path):
    image, ok, error = tf.numpy_function(load, [path], (dtype, tf.bool, tf.string))
    return {'image': image, 'ok': tf.logical_and(ok, i >= 0), 'error': error, 'index': i}

  ds = tf.data.Dataset.from_tensor_slices((index, padded))
  ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  yield from ds.batch(batch_size).prefetch(2).as_numpy_iterator()


CACHE_MEMORY_SHARE = 0.25  # cache=None caches when the decoded images fit in this share


def _choose_cache(cache: bool | None, nbytes: int) -> tuple[bool, str]:
  """(whether to cache, why) for `nbytes` of decoded images."""
  if cache is not None:
    return bool(cache), f'cache={cache} given'
  budget = int(available_memory_bytes() * CACHE_MEMORY_SHARE)
  fits = nbytes <= budget
  relation = '<=' if fits else '>'
  return fits, f'{nbytes} bytes {relation} budget {budget} (a quarter of the available memory)'


class ImageRows:
  """Image files that index like a uint8 array [N, S, S, 3] (float32 for a float geometry,
  DINOv3's), decoded on demand.

  The training pipeline gathers rows from it as from a feature array (with `np.take`, which
  calls `take`), which is how features are computed on the fly: decoding happens on the
  gathering thread (a thread pool over the rows), the extractors run inside the jitted step. An
  unreadable file stops training with its path.

  With the cache on, each row is decoded at most once, the first time it is gathered, and kept
  in an [N, S, S, 3] array of that dtype (allocated lazily by the OS, page by page, as rows are
  filled).
  Gathering is thread-safe: the training pipeline and evaluation may gather at the same time.
  """

  def __init__(
    self,
    paths: Sequence[str],
    resize_to: int,
    image_size: int,
    threads: int = 4,
    cache: bool | None = None,
    geometry: Geometry | None = None,
  ):
    """Describes the images; decodes nothing yet.

    Args:
      paths: the image files, one per row.
      resize_to: shorter side after resizing, before the centre crop.
      image_size: side S of the square crop.
      threads: decoding threads.
      cache: keep decoded rows: True always, False never, None when N * S * S * 3 bytes fit in
        `CACHE_MEMORY_SHARE` of the available memory.
      geometry: the extractor's resize / crop (`load_image`); None: `resize_and_crop`.
    """
    self.paths = list(paths)
    self.resize_to, self.image_size, self.threads = resize_to, image_size, threads
    self.geometry = geometry
    self.shape = (len(self.paths), image_size, image_size, 3)
    self.dtype = _pixel_dtype(geometry)
    self.cached, why = _choose_cache(cache, int(np.prod(self.shape)) * self.dtype.itemsize)
    what = 'cached' if self.cached else 'not cached'
    logging.info('Decoded images of %d files %s: %s', len(self.paths), what, why)
    self._lock = threading.Lock()
    self._cache = np.empty(self.shape, self.dtype) if self.cached else None
    self.decoded = np.zeros(len(self.paths), bool)  # rows held in the cache

  def __len__(self) -> int:
    return len(self.paths)

  def _load(self, row: int) -> np.ndarray:
    try:
      if self.geometry is None:
        return load_image(self.paths[row], self.resize_to, self.image_size)
      return load_image(self.paths[row], self.resize_to, self.image_size, self.geometry)
    except Exception as e:
      why = image_decode.describe_error(e)
      raise InputError(f'unreadable image {self.paths[row]}: {why}') from e

  def _decode(self, rows: np.ndarray) -> Iterator[np.ndarray]:
    """The crops of `rows` (int [K]), in order, decoded in the thread pool."""
    with concurrent.futures.ThreadPoolExecutor(self.threads) as pool:
      yield from pool.map(self._load, rows.tolist())

  def _fill(self, rows: np.ndarray) -> None:
    """Decodes into the cache those of `rows` not decoded yet, each once."""
    with self._lock:
      missing = np.unique(rows[~self.decoded[rows]])
      if missing.size:
        for row, crop in zip(missing, self._decode(missing), strict=True):
          self._cache[row] = crop
          self.decoded[row] = True

  def __getitem__(self, rows) -> np.ndarray:
    """Rows as a new array, like `array[rows]` for an int, a slice or an int array."""
    return self.take(np.arange(len(self.paths))[rows])  # NumPy's indexing rules and IndexError

  def take(self, indices, axis: int = 0, out: np.ndarray | None = None, mode: str = 'raise'):
    """`np.take(self, indices, axis=0, out=..., mode=...)`, which NumPy forwards here: the rows
    gathered, into `out` when given. (Without this method NumPy would turn the whole object
    into an array, decoding every file.)"""
    if axis != 0:
      raise ValueError(f'ImageRows.take: only axis=0 is supported, got axis={axis}')
    rows = np.asarray(indices)
    if mode == 'clip':
      rows = np.clip(rows, 0, len(self.paths) - 1)
    elif mode == 'wrap':
      rows = np.mod(rows, len(self.paths))
    else:
      rows = np.arange(len(self.paths))[rows]  # negative rows count from the end; IndexError
    rows = np.asarray(rows)
    if self.cached:
      self._fill(rows.reshape(-1))
      return np.take(self._cache, rows, axis=0, out=out)
    crops = np.empty(rows.shape + self.shape[1:], self.dtype) if out is None else out
    for i, crop in enumerate(self._decode(rows.reshape(-1))):
      crops[np.unravel_index(i, rows.shape)] = crop
    return crops
