"""One image file -> the upright 8-bit RGB picture a viewer shows.

The rules, applied wherever memjax decodes an image (extract, predict, on-the-fly features, the
report's grids, the TFDS builders):

- **Orientation.** The EXIF Orientation tag (how phones save portrait photos; TIFF's own tag too)
  is applied, so a photo is scored the way it is shown, not as its raw pixels lie. A damaged EXIF
  block counts as no orientation, as in viewers.
- **Animated and multi-page files** (GIF, APNG, WebP, TIFF): the first frame.
- **Colour.** CMYK, YCbCr, palette and 1-bit images are converted to RGB; transparency (RGBA,
  gray + alpha, palette transparency) is composited onto white.
- **Bit depth.** Values are scaled from the file's range to 0..255, never stretched by the
  image's own maximum: 16-bit (gray or RGB) by 255/65535; 32-bit integers by 255/(2^32 - 1)
  (unsigned) or 255/(2^31 - 1) (signed, negatives black), and likewise for signed 16 and 8 bits;
  floats are 0.0 black .. 1.0 white, clipped; a float image with values above 1 is read on the
  0..255 scale, and above 255 on the 0..65535 scale. Where PIL cannot tell a 32-bit image's
  depth (no TIFF tags), values up to 65535 are read as 16-bit.
- TIFFs PIL cannot open (float RGB, 64-bit float, half floats) are read with `tifffile`, the
  first page, by the same rules.
"""

import os

import numpy as np
from absl import logging
from PIL import Image, ImageOps, UnidentifiedImageError

_WHITE = (255, 255, 255)
_SIXTEEN_BIT = ('I;16', 'I;16L', 'I;16B', 'I;16N')
_TIFF_MAGIC = (b'II*\x00', b'MM\x00*')
# TIFF / EXIF Orientation -> the PIL transpose that makes the picture upright.
_UPRIGHT = {
  2: Image.Transpose.FLIP_LEFT_RIGHT,
  3: Image.Transpose.ROTATE_180,
  4: Image.Transpose.FLIP_TOP_BOTTOM,
  5: Image.Transpose.TRANSPOSE,
  6: Image.Transpose.ROTATE_270,
  7: Image.Transpose.TRANSVERSE,
  8: Image.Transpose.ROTATE_90,
}


class UnreadableImageError(OSError):
  """An image file that is empty or in no format PIL can decode; the message says which."""


def describe_error(error: BaseException) -> str:
  """One line for a file that failed to load: the message, with the type unless it is ours."""
  if isinstance(error, UnreadableImageError):
    return str(error)
  return f'{type(error).__name__}: {error}'


def decode_image(path: str) -> Image.Image:
  """The first frame of `path`, upright, as 8-bit RGB (the rules in the module docstring).

  Raises:
    UnreadableImageError for an empty, truncated or corrupt file or an unknown format; OSError
    for a file the OS cannot read.
  """
  if os.path.isfile(path) and os.path.getsize(path) == 0:
    raise UnreadableImageError('empty file (0 bytes); expected an image')
  try:
    image = Image.open(path)
  except UnidentifiedImageError as e:
    if _head(path)[:4] in _TIFF_MAGIC:
      return _decode_tiff(path, e)
    raise UnreadableImageError(
      f'unsupported or corrupt image format; expected a file PIL decodes (JPEG, PNG, GIF, BMP, '
      f'TIFF, WebP, ...), starting with bytes {_head(path)!r}'
    ) from e
  except (OSError, SyntaxError) as e:
    raise _corrupt(e, None) from e
  with image:
    try:
      image.seek(0)  # the first frame of an animated or multi-page file
      image.load()
      depth = _integer_depth(image)
      upright = _upright(image)
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # PIL's decoders raise all these
      raise _corrupt(e, image.format) from e
  return to_rgb(upright, depth)


def _upright(image: Image.Image) -> Image.Image:
  """`image` with its EXIF orientation applied (a copy)."""
  try:
    return ImageOps.exif_transpose(image)
  except (OSError, SyntaxError, ValueError, KeyError, TypeError) as e:  # a damaged EXIF block
    logging.warning('image EXIF unreadable (%s): orientation not applied', e)
    return image.copy()


def _integer_depth(image: Image.Image) -> tuple[int, bool] | None:
  """(bits per sample, signed) of a 32-bit-integer ('I') image, where the file says it."""
  tags = getattr(image, 'tag_v2', None)
  if image.mode != 'I' or tags is None or 258 not in tags:
    return None
  bits = tags[258]
  bits = bits[0] if isinstance(bits, tuple) else bits
  sample_format = tags.get(339, 1)
  sample_format = sample_format[0] if isinstance(sample_format, tuple) else sample_format
  return int(bits), sample_format == 2


def to_rgb(image: Image.Image, depth: tuple[int, bool] | None = None) -> Image.Image:
  """Any PIL image as 8-bit RGB; transparent pixels become white.

  Args:
    image: a decoded image of any mode.
    depth: (bits per sample, signed) of an 'I' image, from the file; None when unknown.
  """
  if image.mode == 'P' and 'transparency' in image.info:
    image = image.convert('RGBA')
  if image.mode in ('RGBA', 'LA', 'PA', 'RGBa', 'La'):
    rgba = image.convert('RGBA')
    background = Image.new('RGBA', rgba.size, _WHITE + (255,))
    return Image.alpha_composite(background, rgba).convert('RGB')
  if image.mode in _SIXTEEN_BIT:
    return Image.fromarray(to_uint8(np.asarray(image).astype(np.uint16))).convert('RGB')
  if image.mode == 'I':
    return Image.fromarray(_int32_to_uint8(np.asarray(image), depth)).convert('RGB')
  if image.mode == 'F':
    return Image.fromarray(to_uint8(np.asarray(image))).convert('RGB')
  return image.convert('RGB')


def _int32_to_uint8(values: np.ndarray, depth: tuple[int, bool] | None) -> np.ndarray:
  """PIL's int32 storage of an integer image as uint8, by the file's depth when known."""
  if depth is None:
    depth = (16, False) if values.max(initial=0) <= 0xFFFF else (32, True)
  bits, signed = depth
  if bits == 32 and not signed:
    return to_uint8(values.view(np.uint32))
  if bits in (8, 16, 32):
    dtype = np.dtype(f'{"i" if signed else "u"}{bits // 8}')
    return to_uint8(values.astype(dtype))
  return to_uint8(values.astype(np.int64), full_scale=2**bits - 1)


def to_uint8(values: np.ndarray, full_scale: float | None = None) -> np.ndarray:
  """An array of any numeric dtype scaled from its type's range to uint8 (module rules).

  Args:
    values: integers (full scale: the dtype's maximum) or floats (0..1, or 0..255 / 0..65535
      when values exceed 1 / 255).
    full_scale: the value that maps to 255, overriding the dtype's.
  """
  if values.dtype == np.uint8 and full_scale is None:
    return values
  if values.dtype == bool:
    return values.astype(np.uint8) * 255
  if full_scale is None:
    if np.issubdtype(values.dtype, np.integer):
      full_scale = np.iinfo(values.dtype).max
    else:
      top = float(np.nanmax(values, initial=0.0))
      full_scale = 1.0 if top <= 1.0 else 255.0 if top <= 255.0 else 65535.0
  scaled = np.nan_to_num(values.astype(np.float64)) * (255.0 / full_scale)
  return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _decode_tiff(path: str, error: Exception) -> Image.Image:
  """A TIFF that PIL cannot open, read with tifffile (first page) by the same rules."""
  try:
    import tifffile  # noqa: PLC0415  (only for TIFFs PIL cannot read)

    with tifffile.TiffFile(path) as tiff:
      page = tiff.pages[0]
      values = page.asarray()
      orientation = int(page.tags[274].value) if 274 in page.tags else 1
  except Exception as e:  # tifffile missing or the file unreadable to it as well
    raise UnreadableImageError(
      f'TIFF that neither PIL ({error}) nor tifffile ({type(e).__name__}: {e}) can decode'
    ) from e
  if values.ndim == 3 and values.shape[-1] not in (1, 3, 4) and values.shape[0] in (1, 3, 4):
    values = np.moveaxis(values, 0, -1)  # planar (samples first) storage
  if values.ndim == 3 and values.shape[-1] == 1:
    values = values[..., 0]
  if values.ndim not in (2, 3) or (values.ndim == 3 and values.shape[-1] not in (3, 4)):
    raise UnreadableImageError(f'TIFF of shape {values.shape}; expected gray, RGB or RGBA')
  image = to_rgb(Image.fromarray(to_uint8(values)))
  transpose = _UPRIGHT.get(orientation)
  return image.transpose(transpose) if transpose is not None else image


def _corrupt(error: Exception, image_format: str | None) -> Exception:
  """PIL's decoding errors (no errno) as UnreadableImageError; real OS errors stay as they are."""
  if isinstance(error, OSError) and error.errno is not None:
    return error
  what = f'{image_format} data' if image_format else 'image data'
  return UnreadableImageError(
    f'truncated or corrupt {what} ({error}); expected a complete image file'
  )


def _head(path: str) -> bytes:
  with open(path, 'rb') as f:
    return f.read(8)
