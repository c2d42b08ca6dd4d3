"""Photos as cameras and editors write them: one upright RGB picture, saved in every orientation,
mode and bit depth, decodes to the same pixels and features (JPEG variants within what JPEG
re-encoding changes)."""

import struct
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image

from memjax.datasets import tfds_common
from memjax.experiments import memorable_images
from memjax.features import image_decode, images, registry

RESIZE, SIZE = 48, 40
# Raw pixels a camera stores for each EXIF orientation, from the upright picture.
_RAW = {
  1: None,
  2: Image.Transpose.FLIP_LEFT_RIGHT,
  3: Image.Transpose.ROTATE_180,
  4: Image.Transpose.FLIP_TOP_BOTTOM,
  5: Image.Transpose.TRANSPOSE,
  6: Image.Transpose.ROTATE_90,
  7: Image.Transpose.TRANSVERSE,
  8: Image.Transpose.ROTATE_270,
}


def _upright() -> np.ndarray:
  """A 60x90 portrait picture whose halves differ, so any wrong rotation or flip shows."""
  yy, xx = np.mgrid[0:90, 0:60]
  rgb = np.stack([xx * 4, yy * 2.5, 128 + 80 * np.sin(xx / 5.0 + yy / 9.0)], -1)
  rgb[:30, :20] = (250, 20, 20)  # a red block at the top left
  return np.clip(rgb, 0, 255).astype(np.uint8)


def _png16(values: np.ndarray) -> bytes:
  """A 16-bit gray or RGB PNG (PIL writes no 16-bit RGB)."""
  height, width = values.shape[:2]
  color_type = 2 if values.ndim == 3 else 0
  raw = b''.join(b'\0' + row.astype('>u2').tobytes() for row in values)

  def chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))

  header = struct.pack('>IIBBBBB', width, height, 16, color_type, 0, 0, 0)
  return (
    b'\x89PNG\r\n\x1a\n'
    + chunk(b'IHDR', header)
    + chunk(b'IDAT', zlib.compress(raw))
    + chunk(b'IEND', b'')
  )


def _exif(orientation: int) -> bytes:
  exif = Image.Exif()
  exif[0x0112] = orientation
  return exif.tobytes()


def _oriented(upright: Image.Image, orientation: int) -> Image.Image:
  return upright if _RAW[orientation] is None else upright.transpose(_RAW[orientation])


@pytest.fixture(scope='module')
def files(tmp_path_factory):
  """{name: (path, reference picture, lossy)} for every variant."""
  root = tmp_path_factory.mktemp('photos')
  rgb = _upright()
  upright = Image.fromarray(rgb)
  gray = np.asarray(upright.convert('L'))
  gray_rgb = Image.fromarray(gray).convert('RGB')
  palette = upright.quantize(64)
  out = {}

  def add(name, reference, lossy=False, data=None, save=None):
    path = str(root / name)
    if data is not None:
      with open(path, 'wb') as f:
        f.write(data)
    else:
      save(path)
    out[name] = (path, reference, lossy)

  add('upright.png', upright, save=upright.save)
  add('upright.jpg', upright, lossy=True, save=lambda p: upright.save(p, quality=92))
  for o in range(1, 9):
    raw = _oriented(upright, o)
    add(f'orient{o}.png', upright, save=lambda p, raw=raw, o=o: raw.save(p, exif=_exif(o)))
  phone = _oriented(upright, 6)
  add('phone.jpg', upright, True, save=lambda p: phone.save(p, quality=92, exif=_exif(6)))
  add('gray16.png', gray_rgb, data=_png16(gray.astype(np.uint16) * 257))
  add('rgb16.png', upright, data=_png16(rgb.astype(np.uint16) * 257))
  rgb16 = rgb.astype(np.uint16) * 257
  add('rgb16.tif', upright, save=lambda p: tifffile.imwrite(p, rgb16, photometric='rgb'))
  add('gray16.tif', gray_rgb, save=lambda p: tifffile.imwrite(p, gray.astype(np.uint16) * 257))
  u32 = gray.astype(np.uint32) * 0x01010101  # 255 -> 2**32 - 1
  add('uint32.tif', gray_rgb, save=lambda p: tifffile.imwrite(p, u32))
  i32 = np.rint(gray.astype(np.float64) * ((2**31 - 1) / 255)).astype(np.int32)
  add('int32.tif', gray_rgb, save=lambda p: Image.fromarray(i32).save(p))
  add('float.tif', gray_rgb, save=lambda p: Image.fromarray(gray.astype(np.float32) / 255).save(p))
  float_rgb = rgb.astype(np.float32) / 255
  add('float_rgb.tif', upright, save=lambda p: tifffile.imwrite(p, float_rgb, photometric='rgb'))
  add('cmyk.jpg', upright, True, save=lambda p: upright.convert('CMYK').save(p, quality=92))
  add('palette.png', palette.convert('RGB'), save=palette.save)
  gray_alpha = Image.merge('LA', (Image.fromarray(gray), Image.new('L', upright.size, 255)))
  add('gray_alpha.png', gray_rgb, save=gray_alpha.save)
  add('rgba.png', upright, save=upright.convert('RGBA').save)
  inverted = Image.fromarray(255 - rgb)
  add(
    'animated.png',
    upright,
    save=lambda p: upright.save(p, save_all=True, append_images=[inverted], duration=100),
  )
  add(
    'animated.gif',
    palette.convert('RGB'),
    save=lambda p: palette.save(p, save_all=True, append_images=[inverted.quantize(64)]),
  )
  add('pages.tif', upright, save=lambda p: tifffile.imwrite(p, np.stack([rgb, 255 - rgb])))
  return out


def _crop(path):
  return images.load_image(path, RESIZE, SIZE).astype(np.float64)


def test_every_variant_decodes_to_the_upright_picture(files):
  jpeg_error = np.abs(_crop(files['upright.jpg'][0]) - _crop(files['upright.png'][0])).mean()
  assert 0 < jpeg_error < 4
  grid = registry.color_grid()
  for name, (path, reference, lossy) in files.items():
    expected = images.resize_and_crop(reference, RESIZE, SIZE).astype(np.float64)
    got = _crop(path)
    features = grid.forward({}, got[None].astype(np.uint8))[0]
    want = grid.forward({}, expected[None].astype(np.uint8))[0]
    if lossy:  # JPEG: as close as re-encoding the upright picture gets
      assert np.abs(got - expected).mean() <= 2 * jpeg_error, name
      assert np.abs(features - want).max() <= 4 * jpeg_error / 255, name
    else:  # lossless: the same pixels (16 -> 8 bits may round the last bit)
      assert np.abs(got - expected).max() <= 1, name
      np.testing.assert_allclose(features, want, atol=1 / 255, err_msg=name)


def test_a_sideways_photo_without_the_orientation_rule_would_fail_the_tolerance(files):
  """The test above can fail: the raw pixels of the phone photo are far from the upright crop."""
  path = files['phone.jpg'][0]
  with Image.open(path) as raw:
    sideways = images.resize_and_crop(raw.convert('RGB'), RESIZE, SIZE).astype(np.float64)
  jpeg_error = np.abs(_crop(files['upright.jpg'][0]) - _crop(files['upright.png'][0])).mean()
  assert np.abs(sideways - _crop(files['upright.png'][0])).mean() > 5 * jpeg_error


def test_sixteen_bits_scale_by_the_depth_not_the_maximum(tmp_path):
  """The issue's case: a dim 16-bit photo kept its brightness (mean 110, not stretched to 139)."""
  dim = np.full((20, 20), 110 * 257, np.uint16)
  dim[0, 0] = 200 * 257
  path = tmp_path / 'dim16.png'
  path.write_bytes(_png16(dim))
  assert np.asarray(image_decode.decode_image(str(path)))[5, 5].tolist() == [110, 110, 110]
  assert image_decode.to_uint8(np.array([-0.5, 0.0, 0.5, 1.0])).tolist() == [0, 0, 128, 255]
  assert image_decode.to_uint8(np.array([0.0, 2.0, 255.0])).tolist() == [0, 2, 255]
  assert image_decode.to_uint8(np.array([-5, 0, 2**15 - 1], np.int16)).tolist() == [0, 0, 255]


def test_transparency_is_white_and_a_damaged_exif_is_ignored(tmp_path):
  transparent = Image.new('RGBA', (10, 10), (0, 0, 0, 0))
  assert image_decode.to_rgb(transparent).getpixel((5, 5)) == (255, 255, 255)
  half = Image.new('LA', (4, 4), (0, 128))
  assert image_decode.to_rgb(half).getpixel((1, 1)) == (127, 127, 127)
  path = tmp_path / 'bad_exif.jpg'
  Image.fromarray(_upright()).save(path, exif=b'Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff')
  assert image_decode.decode_image(str(path)).size == (60, 90)


def test_tfds_values_and_report_thumbnails_are_upright(files):
  """The other decoders: TFDS stores the upright pixels; the report grid shows them."""
  plain, phone = files['upright.jpg'][0], files['phone.jpg'][0]
  assert tfds_common.image_value(plain) == plain  # TensorFlow decodes it the same: bytes as is
  value = tfds_common.image_value(phone)
  np.testing.assert_array_equal(value, np.asarray(image_decode.decode_image(phone)))
  assert value.shape == (90, 60, 3)
  gray16 = tfds_common.image_value(files['gray16.png'][0])
  assert gray16.dtype == np.uint8 and gray16.shape == (90, 60, 3)
  thumb = memorable_images._thumbnail(phone, 32).astype(np.float64)
  upright = memorable_images._thumbnail(files['upright.png'][0], 32).astype(np.float64)
  assert np.abs(thumb - upright).mean() < 4
