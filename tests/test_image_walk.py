"""Folder walks (memjax/datasets/image_walk.py): symlink cycles end, each real image is listed once,
in a sorted, deterministic order; `--mode=predict`'s folder input goes through it."""

import os

import ml_collections
import pytest

from memjax import predict
from memjax.datasets import image_walk
from memjax.errors import InputError

JPG = {'.jpg', '.jpeg', '.png'}


def _touch(path, data=b'x'):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'wb') as f:
    f.write(data)
  return str(path)


def test_a_symlink_cycle_is_walked_once(tmp_path):
  a = _touch(tmp_path / 'a' / 'cat.jpg')
  b = _touch(tmp_path / 'a' / 'b' / 'dog.JPG')
  os.symlink(tmp_path, tmp_path / 'a' / 'b' / 'up')  # b/up -> root: a cycle
  os.symlink('..', tmp_path / 'a' / 'b' / 'parent')  # b/parent -> a: another one
  assert image_walk.list_files(tmp_path, JPG) == [b, a]  # sorted: a/b/dog.JPG < a/cat.jpg


def test_two_links_to_one_folder_and_linked_files_count_once(tmp_path):
  real = _touch(tmp_path / 'photos' / 'one.png')
  _touch(tmp_path / 'photos' / 'sub' / 'two.jpg')
  os.symlink(tmp_path / 'photos', tmp_path / 'zz_link')  # a second way into photos/
  os.symlink(tmp_path / 'photos', tmp_path / 'aa_link')  # ... and a third, sorted first
  os.symlink(real, tmp_path / 'photos' / 'sub' / 'alias.jpg')  # a file symlink
  os.link(real, tmp_path / 'photos' / 'sub' / 'hard.jpg')  # a hard link
  files = image_walk.list_files(tmp_path, JPG)
  assert len(files) == 2
  assert {os.path.realpath(f) for f in files} == {
    os.path.realpath(real),
    os.path.realpath(tmp_path / 'photos' / 'sub' / 'two.jpg'),
  }
  assert files == sorted(files)
  assert image_walk.list_files(tmp_path, JPG) == files  # deterministic
  # aa_link is walked before photos/, so the images are listed under it.
  assert files == [str(tmp_path / 'aa_link' / 'one.png'), str(tmp_path / 'aa_link/sub/two.jpg')]


def test_extensions_hidden_files_and_broken_links(tmp_path):
  keep = _touch(tmp_path / 'x' / 'IMG_1.JPEG')
  _touch(tmp_path / 'x' / 'notes.txt')
  _touch(tmp_path / 'x' / '._IMG_1.JPEG')  # macOS metadata, not an image
  _touch(tmp_path / '.cache' / 'thumb.jpg')
  os.symlink(tmp_path / 'gone.jpg', tmp_path / 'x' / 'broken.jpg')
  assert image_walk.list_files(tmp_path, JPG) == [keep]
  everything = image_walk.list_files(tmp_path)
  assert everything == [keep, str(tmp_path / 'x' / 'notes.txt')]


def test_not_a_folder_is_an_input_error(tmp_path):
  with pytest.raises(InputError, match='not a folder'):
    image_walk.list_files(tmp_path / 'missing')


def test_predict_folder_input_lists_each_image_once_despite_a_cycle(tmp_path):
  first = _touch(tmp_path / 'in' / 'a.jpg')
  second = _touch(tmp_path / 'in' / 'deeper' / 'b.png')
  os.symlink(tmp_path / 'in', tmp_path / 'in' / 'deeper' / 'loop')
  os.symlink(tmp_path / 'in' / 'deeper', tmp_path / 'in' / 'again')
  config = ml_collections.ConfigDict({'predict': {'input': str(tmp_path / 'in')}})
  paths = predict.list_inputs(config)
  assert sorted(map(os.path.realpath, paths)) == sorted(map(os.path.realpath, [first, second]))
  assert paths[0] == first
