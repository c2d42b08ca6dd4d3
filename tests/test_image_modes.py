"""Every image mode to_rgb handles, with the pixel values worked out by hand; load_image's
one-line reasons; ImageRows' take modes. (Added for mutants of memjax/features/images.py that
survived the first mutation run: only the RGB and RGBA paths were checked.)"""

import numpy as np
import pytest
from PIL import Image

from memjax.errors import InputError
from memjax.features import images


@pytest.mark.parametrize('mode', ['I;16', 'I', 'F'])
def test_wide_grayscale_is_scaled_to_8_bits_by_its_maximum(mode):
  values = np.array([[0, 1000], [2000, 4000]], np.float64)
  dtype = {'I;16': np.uint16, 'I': np.int32, 'F': np.float32}[mode]
  image = Image.fromarray(values.astype(dtype))
  assert image.mode == mode
  rgb = np.asarray(images.to_rgb(image))
  want = np.floor(values * 255.0 / 4000).astype(np.uint8)  # truncation, as astype(uint8) does
  assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
  for c in range(3):
    np.testing.assert_array_equal(rgb[..., c], want)


@pytest.mark.parametrize('mode', ['I;16', 'I', 'F'])
def test_wide_grayscale_within_8_bits_is_kept(mode):
  values = np.array([[0, 17], [128, 255]], np.float64)
  dtype = {'I;16': np.uint16, 'I': np.int32, 'F': np.float32}[mode]
  rgb = np.asarray(images.to_rgb(Image.fromarray(values.astype(dtype))))
  np.testing.assert_array_equal(rgb[..., 1], values.astype(np.uint8))


@pytest.mark.parametrize('mode', ['LA', 'PA', 'RGBA'])
def test_transparency_is_composited_onto_white(mode):
  grey, alpha = 40, np.array([[0, 255], [128, 64]], np.uint8)
  if mode == 'PA':  # (PIL's LA -> PA conversion drops the alpha: build it from its bands)
    p = Image.new('P', (2, 2), 0)
    p.putpalette([grey] * 3 + [0] * 765)
    image = Image.merge('PA', [p, Image.fromarray(alpha)])
    image.putpalette([grey] * 3 + [0] * 765)
  else:
    image = Image.merge('LA', [Image.new('L', (2, 2), grey), Image.fromarray(alpha)]).convert(mode)
  assert image.mode == mode
  rgb = np.asarray(images.to_rgb(image), np.float64)
  a = alpha.astype(np.float64)
  want = (grey * a + 255.0 * (255 - a)) / 255.0  # alpha over white
  for c in range(3):
    np.testing.assert_allclose(rgb[..., c], want, atol=1.0)


def test_a_palette_with_a_transparent_index_turns_it_white():
  image = Image.new('P', (2, 1))
  image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
  image.putpixel((0, 0), 0)
  image.putpixel((1, 0), 1)
  image.info['transparency'] = 0
  rgb = np.asarray(images.to_rgb(image))
  assert rgb[0, 0].tolist() == [255, 255, 255] and rgb[0, 1].tolist() == [200, 100, 50]
  del image.info['transparency']
  assert np.asarray(images.to_rgb(image))[0, 0].tolist() == [10, 20, 30]


def test_load_image_reasons(tmp_path):
  empty, one, cut = tmp_path / 'empty.png', tmp_path / 'one.png', tmp_path / 'cut.png'
  empty.write_bytes(b'')
  one.write_bytes(b'x')
  Image.new('RGB', (64, 64), (1, 2, 3)).save(tmp_path / 'whole.png')
  cut.write_bytes((tmp_path / 'whole.png').read_bytes()[:60])
  with pytest.raises(images.UnreadableImageError) as e:
    images.load_image(str(empty), 8, 8)
  assert str(e.value) == 'empty file (0 bytes); expected an image'
  with pytest.raises(images.UnreadableImageError) as e:
    images.load_image(str(one), 8, 8)
  assert str(e.value) == (
    'unsupported or corrupt image format; expected a file PIL decodes (JPEG, PNG, GIF, BMP, '
    "TIFF, WebP, ...), starting with bytes b'x'"
  )
  with pytest.raises(images.UnreadableImageError, match=r'^truncated or corrupt PNG data \(.+\); '):
    images.load_image(str(cut), 8, 8)


@pytest.fixture
def rows(tmp_path):
  paths = []
  for i in range(3):
    paths.append(str(tmp_path / f'{i}.png'))
    Image.new('RGB', (10, 12), (40 * i, 2 * i, 9)).save(paths[-1])
  direct = np.stack([images.load_image(p, 10, 8) for p in paths])
  return paths, direct


@pytest.mark.parametrize('cache', [True, False])
@pytest.mark.parametrize('mode', ['clip', 'wrap', 'raise'])
def test_take_modes_and_out_as_numpy(rows, cache, mode):
  paths, direct = rows
  image_rows = images.ImageRows(paths, 10, 8, cache=cache)
  index = np.array([[0, 2], [-1, 1]]) if mode == 'raise' else np.array([[-1, 4], [2, 5]])
  want = np.take(direct, index, axis=0, mode=mode)
  np.testing.assert_array_equal(np.take(image_rows, index, axis=0, mode=mode), want)
  out = np.zeros_like(want)
  got = np.take(image_rows, index, axis=0, out=out, mode=mode)
  np.testing.assert_array_equal(out, want)
  assert got is out


def test_an_unreadable_row_names_its_file_and_reason(tmp_path):
  bad = tmp_path / 'bad.png'
  bad.write_bytes(b'')
  with pytest.raises(InputError) as e:
    images.ImageRows([str(bad)], 10, 8, cache=False)[0]
  assert str(e.value) == f'unreadable image {bad}: empty file (0 bytes); expected an image'
