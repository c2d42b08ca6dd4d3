"""ResMem: the package's model.pt layout read without torch, the Flax network against a NumPy
reference of PyTorch's semantics, its preprocessing, the installed-package lookup and scoring.

The weights are random, narrow (the shapes define the widths), written as `torch.save` zip files
in the package's `model.pt` layout by tests/torch_files.py.
"""

import os
import sys

import jax
import numpy as np
import pytest
import resmem_reference as ref
import torch_files
from PIL import Image

from memjax.errors import InputError
from memjax.features import images, registry
from memjax.features.geometry import Geometry
from memjax.features.resmem import extractor as resmem
from memjax.features.resmem import weights as resmem_weights

BLOCKS = (1, 2, 1, 1)
ARCH = dict(blocks=BLOCKS, width=4, classes=10, alex=(6, 8, 12, 12, 8), head=(16, 12, 8, 8, 6, 4))


def _write(path, tensors: dict) -> str:
  torch_files.save_zip(str(path), {k: torch_files.tensor(v) for k, v in tensors.items()})
  return str(path)


@pytest.fixture(scope='module')
def model_file(tmp_path_factory):
  tensors = ref.random_state_dict(**ARCH)
  return tensors, _write(tmp_path_factory.mktemp('resmem') / 'model.pt', tensors)


def _photo(width: int, height: int, seed: int) -> Image.Image:
  rng = np.random.default_rng(seed)
  small = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
  return Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)


def test_network_equals_the_numpy_reference(model_file):
  tensors, path = model_file
  cfg, _ = resmem_weights.convert(tensors, path)
  assert (cfg.blocks, cfg.width, cfg.classes, cfg.head) == (BLOCKS, 4, 10, ARCH['head'])
  e = resmem.make_extractor(path, 'pooled_score')
  assert e.feature_dim == 4 * 8 * 4 + 1 and 'Non-commercial' in e.preprocessing
  batch = np.stack([np.asarray(_photo(227, 227, s)) for s in range(2)])
  got = np.asarray(jax.jit(e.forward)(e.params, batch))
  for i in range(2):
    pooled, score = ref.resmem(batch[i], tensors, BLOCKS)
    np.testing.assert_allclose(got[i, :-1], pooled, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got[i, -1], score, atol=1e-5)
    assert 0.02 < score < 0.98  # not saturated: the comparison means something


def test_preprocessing_is_resmems_transformer():
  """torchvision Resize((256, 256)) on a PIL image (bilinear, whole image), CenterCrop(227) at
  offset int(round((256 - 227) / 2)) = round(14.5) = 14."""
  image = _photo(320, 200, 0)
  want = np.asarray(image.resize((256, 256), Image.Resampling.BILINEAR))[14:241, 14:241]
  np.testing.assert_array_equal(resmem.GEOMETRY.apply(image), want)
  assert Geometry(256, 227, 'bilinear', 'truncate', 'stretch') == resmem.GEOMETRY


def test_score_images_and_unreadable_files(model_file, tmp_path):
  tensors, path = model_file
  paths = []
  for i, size in enumerate([(300, 200), (227, 260)]):
    paths.append(str(tmp_path / f'{i}.jpg'))
    _photo(*size, seed=i).save(paths[-1], quality=95)
  (tmp_path / 'bad.jpg').write_bytes(b'not an image')
  paths.insert(1, str(tmp_path / 'bad.jpg'))
  scores, errors = resmem.score_images(paths, path, batch_size=2)
  assert np.isnan(scores[1]) and 'unsupported or corrupt' in errors[1]
  for i in (0, 2):
    crop = images.load_image(paths[i], 256, 227, resmem.GEOMETRY)
    np.testing.assert_allclose(scores[i], ref.resmem(crop, tensors, BLOCKS)[1], atol=1e-5)
    assert errors[i] == ''


def test_installed_package_is_found_without_importing_it(model_file, tmp_path, monkeypatch):
  _, path = model_file
  package = tmp_path / 'site' / 'resmem'
  package.mkdir(parents=True)
  (package / '__init__.py').write_text('raise ImportError("importing resmem needs torch")\n')
  os.link(path, package / 'model.pt')
  monkeypatch.syspath_prepend(str(tmp_path / 'site'))
  sys.modules.pop('resmem', None)
  assert resmem_weights.default_path() == str(package / 'model.pt')
  e = resmem.make_extractor()
  assert e.feature_dim == 128 and e.name == 'resmem/pooled'


def test_not_installed_and_bad_files_fail_in_one_line(model_file, tmp_path, monkeypatch):
  import importlib.util

  tensors, _ = model_file
  monkeypatch.setattr(importlib.util, 'find_spec', lambda name: None)
  with pytest.raises(InputError, match='pip install resmem.*non-commercial'):
    resmem.make_extractor()
  bad = dict(tensors)
  del bad['features.layer2.1.bn2.running_var']
  with pytest.raises(InputError, match=r"'features\.layer2\.1\.bn2\.running_var' is missing") as e:
    resmem.make_extractor(_write(tmp_path / 'bad.pt', bad))
  assert '\n' not in str(e.value)
  pointer = tmp_path / 'pointer.pt'
  pointer.write_text('version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 1\n')
  with pytest.raises(InputError, match='git-lfs pointer'):
    resmem.make_extractor(str(pointer))
  with pytest.raises(InputError, match='resmem output must be one of'):
    resmem.make_extractor(str(pointer), 'logits')


def test_registry_kind(model_file, test_config):
  _, path = model_file
  config = test_config
  config.extractors.cnn.kind = 'resmem'
  config.extractors.cnn.weights = path
  config.extractors.cnn.output = 'score'
  e = registry.build(config, 'cnn')
  assert (e.name, e.feature_dim, e.image_size, e.crop) == ('resmem/score', 1, 227, 'stretch')


def test_predict_scores_a_folder_with_no_trained_workdir(model_file, tmp_path):
  """configs/resmem_score.py: `predict` writes ResMem's own scores; the workdir holds nothing."""
  import csv

  from configs import resmem_score
  from memjax import predict

  _, path = model_file
  folder = tmp_path / 'photos'
  folder.mkdir()
  for i, (w, h) in enumerate(((300, 200), (180, 260), (227, 227))):
    _photo(w, h, i).save(folder / f'{i}.jpg', quality=95)
  config = resmem_score.get_config()
  config.extractors.resmem.weights = path
  config.predict.input, config.predict.output = str(folder), str(tmp_path / 'scores.csv')
  assert predict.zero_shot(config)
  summary = predict.predict(config, str(tmp_path / 'empty_workdir'))
  assert summary['num_images'] == 3 and summary['num_folds'] == 0
  with open(tmp_path / 'scores.csv', newline='') as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ['path', 'score', 'error']
  paths = [r['path'] for r in rows]
  want, _ = resmem.score_images(paths, path)
  np.testing.assert_allclose([float(r['score']) for r in rows], want, atol=1e-6)
  assert not os.path.exists(tmp_path / 'empty_workdir')
