"""Transparency and palettes through to_rgb with the pixel values worked out by hand;
load_image's one-line reasons; ImageRows' take modes. (Added for mutants of
memjax/features/images.py that survived the first mutation run; the bit-depth rules of
image_decode are tests/test_image_decode.py's.)"""

import numpy as np
import pytest
from PIL import Image

from memjax.errors import InputError
from memjax.features import image_decode, images


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
  rgb = np.asarray(image_decode.to_rgb(image), np.float64)
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
  rgb = np.asarray(image_decode.to_rgb(image))
  assert rgb[0, 0].tolist() == [255, 255, 255] and rgb[0, 1].tolist() == [200, 100, 50]
  del image.info['transparency']
  assert np.asarray(image_decode.to_rgb(image))[0, 0].tolist() == [10, 20, 30]


def test_load_image_reasons(tmp_path):
  empty, one, cut = tmp_path / 'empty.png', tmp_path / 'one.png', tmp_path / 'cut.png'
  empty.write_bytes(b'')
  one.write_bytes(b'x')
  Image.new('RGB', (64, 64), (1, 2, 3)).save(tmp_path / 'whole.png')
  cut.write_bytes((tmp_path / 'whole.png').read_bytes()[:60])
  with pytest.raises(image_decode.UnreadableImageError) as e:
    images.load_image(str(empty), 8, 8)
  assert str(e.value) == 'empty file (0 bytes); expected an image'
  with pytest.raises(image_decode.UnreadableImageError) as e:
    images.load_image(str(one), 8, 8)
  assert str(e.value) == (
    'unsupported or corrupt image format; expected a file PIL decodes (JPEG, PNG, GIF, BMP, '
    "TIFF, WebP, ...), starting with bytes b'x'"
  )
  truncated = r'^truncated or corrupt PNG data \(.+\); '
  with pytest.raises(image_decode.UnreadableImageError, match=truncated):
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
def test_take_modes_and_out_as_numpy(rows, cache, mode, monkeypatch):
  paths, direct = rows
  decoded = []
  load = images.load_image
  monkeypatch.setattr(images, 'load_image', lambda p, *a: decoded.append(p) or load(p, *a))
  image_rows = images.ImageRows(paths, 10, 8, cache=cache)
  index = np.array([[0, 2], [-1, 2]]) if mode == 'raise' else np.array([[-1, 4], [2, 5]])
  want = np.take(direct, index, axis=0, mode=mode)
  got = np.take(image_rows, index, axis=0, mode=mode)
  np.testing.assert_array_equal(got, want)
  # Only the rows asked for are decoded: NumPy falls back to converting the whole object (every
  # file) when `take` raises a TypeError, which would hide a broken `take` behind right values.
  asked = {paths[i] for i in np.take(np.arange(3), index, mode=mode).ravel()}
  assert len(asked) == 2 and set(decoded) == asked
  assert len(decoded) == (2 if cache else 4)
  out = np.zeros_like(want)
  assert np.take(image_rows, index, axis=0, out=out, mode=mode) is out
  np.testing.assert_array_equal(out, want)


def test_an_unreadable_row_names_its_file_and_reason(tmp_path):
  bad = tmp_path / 'bad.png'
  bad.write_bytes(b'')
  with pytest.raises(InputError) as e:
    images.ImageRows([str(bad)], 10, 8, cache=False)[0]
  assert str(e.value) == f'unreadable image {bad}: empty file (0 bytes); expected an image'


def test_a_folder_is_an_os_error_not_an_image_error(tmp_path):
  with pytest.raises(IsADirectoryError):
    images.load_image(str(tmp_path), 8, 8)


def test_take_only_along_rows(rows):
  paths, _ = rows
  with pytest.raises(ValueError) as e:
    images.ImageRows(paths, 10, 8).take(np.array([0]), axis=1)
  assert str(e.value) == 'ImageRows.take: only axis=0 is supported, got axis=1'
