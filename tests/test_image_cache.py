"""ImageRows' decoded-image cache: same values, each file decoded once, the fits decision."""

import concurrent.futures
import logging as std_logging
import time

import numpy as np
import pytest
from PIL import Image

from memjax import input_pipeline
from memjax.errors import InputError
from memjax.features import images

SIZE, RESIZE = 8, 10


def _write_images(tmp_path, count=5):
  """PNGs and JPEGs of random colours and sizes."""
  rng = np.random.default_rng(0)
  paths = []
  for i in range(count):
    pixels = rng.integers(0, 256, (12 + i, 14 + 2 * i, 3), dtype=np.uint8)
    path = tmp_path / f'image{i}.{"png" if i % 2 else "jpg"}'
    Image.fromarray(pixels).save(path)
    paths.append(str(path))
  return paths


@pytest.fixture
def counted(monkeypatch):
  """Counts `load_image` calls per path."""
  calls = []
  real = images.load_image

  def load(path, resize_to, image_size):
    calls.append(path)
    return real(path, resize_to, image_size)

  monkeypatch.setattr(images, 'load_image', load)
  return calls


def test_cached_values_equal_uncached_ones(tmp_path):
  paths = _write_images(tmp_path)
  direct = np.stack([images.load_image(p, RESIZE, SIZE) for p in paths])
  cached = images.ImageRows(paths, RESIZE, SIZE, cache=True)
  plain = images.ImageRows(paths, RESIZE, SIZE, cache=False)
  assert cached.cached and not plain.cached
  rows = np.array([[3, 0], [3, 4]])
  for source in (cached, plain):
    got = source[rows]
    assert got.shape == (2, 2, SIZE, SIZE, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, direct[rows])
    np.testing.assert_array_equal(source[1], direct[1])
    np.testing.assert_array_equal(source[-1], direct[4])
    np.testing.assert_array_equal(source[1:4], direct[1:4])
    with pytest.raises(IndexError):
      source[[5]]
  # Rows handed out are copies: changing them leaves the cache alone.
  cached[0][:] = 0
  np.testing.assert_array_equal(cached[0], direct[0])


def test_a_second_gather_decodes_nothing(tmp_path, counted):
  paths = _write_images(tmp_path)
  rows = images.ImageRows(paths, RESIZE, SIZE, cache=True)
  rows[np.array([2, 0, 2, 1])]
  assert sorted(counted) == sorted(paths[i] for i in (0, 1, 2))  # each once, duplicates too
  counted.clear()
  rows[np.array([1, 2, 0])]
  rows[0]
  assert counted == []
  rows[np.array([0, 3])]
  assert counted == [paths[3]]
  assert rows.decoded.tolist() == [True, True, True, True, False]


def test_cache_off_decodes_every_time(tmp_path, counted):
  paths = _write_images(tmp_path)
  rows = images.ImageRows(paths, RESIZE, SIZE, cache=False)
  rows[np.array([2, 0, 2])]
  rows[np.array([2, 0, 2])]
  assert len(counted) == 6
  assert not rows.decoded.any()


def test_np_take_gathers_only_the_rows_asked_for(tmp_path, counted):
  """input_pipeline.gather uses np.take(array, rows, axis=0, out=..., mode='clip')."""
  paths = _write_images(tmp_path)
  direct = np.stack([images.load_image(p, RESIZE, SIZE) for p in paths])
  counted.clear()
  for cache in (True, False):
    rows = images.ImageRows(paths, RESIZE, SIZE, cache=cache)
    out = input_pipeline.gather({'image': rows}, np.array([[4, 1]]))['image']
    np.testing.assert_array_equal(out, direct[[[4, 1]]])
    assert sorted(counted) == [paths[1], paths[4]]
    counted.clear()


def test_the_fits_decision_against_a_budget(tmp_path, monkeypatch, caplog):
  paths = _write_images(tmp_path, 3)
  nbytes = 3 * SIZE * SIZE * 3
  monkeypatch.setattr(images, 'available_memory_bytes', lambda: 4 * nbytes)
  with caplog.at_level(std_logging.INFO):
    assert images.ImageRows(paths, RESIZE, SIZE).cached  # exactly a quarter: fits
  assert f'cached: {nbytes} bytes <= budget {nbytes}' in caplog.text
  monkeypatch.setattr(images, 'available_memory_bytes', lambda: 4 * nbytes - 4)
  caplog.clear()
  with caplog.at_level(std_logging.INFO):
    rows = images.ImageRows(paths, RESIZE, SIZE)
  assert not rows.cached
  assert f'not cached: {nbytes} bytes > budget {nbytes - 1}' in caplog.text
  assert images.ImageRows(paths, RESIZE, SIZE, cache=True).cached  # forcing ignores the budget


@pytest.mark.parametrize('cache', [True, False])
def test_an_unreadable_file_is_an_input_error_naming_it(tmp_path, cache):
  paths = _write_images(tmp_path, 3)
  bad = tmp_path / 'broken.jpg'
  bad.write_bytes(b'not an image at all')
  rows = images.ImageRows([*paths, str(bad)], RESIZE, SIZE, cache=cache)
  with pytest.raises(InputError, match=f'unreadable image {bad}'):
    rows[np.array([0, 3])]
  assert not rows.decoded[3]
  np.testing.assert_array_equal(rows[1], images.load_image(paths[1], RESIZE, SIZE))
  with pytest.raises(InputError, match='broken.jpg'):  # still raised the second time
    rows[3]


def test_concurrent_gathers_decode_each_row_once(tmp_path, counted, monkeypatch):
  paths = _write_images(tmp_path, 6)
  direct = np.stack([images.load_image(p, RESIZE, SIZE) for p in paths])
  counted.clear()
  counting = images.load_image
  monkeypatch.setattr(images, 'load_image', lambda *a: (time.sleep(0.01), counting(*a))[1])
  rows = images.ImageRows(paths, RESIZE, SIZE, threads=2, cache=True)
  requests = [np.random.default_rng(i).integers(0, 6, 8) for i in range(16)]
  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    results = list(pool.map(lambda r: rows[r], requests))
  for request, result in zip(requests, results, strict=True):
    np.testing.assert_array_equal(result, direct[request])
  assert sorted(counted) == sorted(set(counted))  # no file twice
