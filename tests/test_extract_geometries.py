"""`--mode=extract` with extractors of different image geometries: one store, one image pipeline
per geometry, each feature computed from its own crops and described by its own preprocessing;
`--mode=predict` of a model trained on that store cuts each image the same ways.

The extractors are small and random: ResMem (the whole image stretched to 256, its 227 crop;
a narrow random `model.pt`), the colour grid (memjax's 224 crop of 256) and a tiny SigLIP (the
whole image stretched to 32, bicubic), so the store holds three geometries.
"""

import os

import jax
import ml_collections
import numpy as np
import pytest
import resmem_reference
import test_vit as tv
import torch_files
from PIL import Image

from memjax import api, extract, predict, run_parts, steps, train
from memjax.errors import InputError
from memjax.features import images, registry, store


@pytest.fixture
def config(test_config, tmp_path):
  """configs/test.py extracting ResMem, the colour grid and SigLIP from a folder of 13 photos."""
  folder = tmp_path / 'images'
  folder.mkdir()
  photos = tv.random_images(13, 8)
  for i, small in enumerate(photos):
    size = (40 + 7 * i, 90 - 3 * i)  # mixed aspect ratios, portrait and landscape
    Image.fromarray(small).resize(size).save(folder / f'{i:02d}.png')
  (folder / 'scores.csv').write_text(
    'image,score\n' + ''.join(f'{i:02d}.png,{i / 13:.3f}\n' for i in range(13))
  )
  tensors = resmem_reference.random_state_dict(
    blocks=(1, 1, 1, 1), width=4, classes=10, alex=(6, 8, 12, 12, 8), head=(16, 12, 8, 8, 6, 4)
  )
  resmem_file = str(tmp_path / 'model.pt')
  torch_files.save_zip(resmem_file, {k: torch_files.tensor(v) for k, v in tensors.items()})
  siglip = tv.save_safetensors(tv.hf_tensors(tv.TINY['siglip']), tmp_path / 'siglip.safetensors')
  config = test_config
  config.data.name = 'image_folder'
  config.data.dir = str(folder)
  config.data.features_dir = str(tmp_path / 'store')
  config.extract.batch_size = 8
  config.extract.dtype = 'float32'
  config.extractors.resmem = ml_collections.ConfigDict(
    dict(kind='resmem', weights=resmem_file, output='pooled_score')
  )
  config.extractors.siglip.weights = siglip
  config.extractors.siglip.variant = 'tiny_siglip'
  config.features = ('resmem', 'color_grid', 'siglip')
  return config


def test_one_store_of_three_geometries(config, tmp_path, monkeypatch):
  groups = registry.build_groups(config)
  assert [sorted(g) for g in groups] == [['resmem'], ['color_grid'], ['siglip']]
  append, calls = store.StoreWriter.append, []

  def append_then_die(self, batch):  # an interrupted run resumes with every pipeline in step
    append(self, batch)
    calls.append(len(batch['resmem']))
    if len(calls) == 1:
      raise KeyboardInterrupt

  monkeypatch.setattr(store.StoreWriter, 'append', append_then_die)
  with pytest.raises(KeyboardInterrupt):
    extract.extract(config, str(tmp_path))
  summary = extract.extract(config, str(tmp_path))
  assert calls == [8, 5] and summary['num_images'] == 13
  ids, features, meta = store.read_store(config.data.features_dir)
  extractors = {n: e for g in groups for n, e in g.items()}
  for name, e in extractors.items():
    entry = meta['features'][name]
    assert entry['preprocessing'].startswith(e.geometry.describe()), name
    assert entry['input_size'] == [e.image_size] * 2
    crops = np.stack(
      [images.load_image(os.path.join(config.data.dir, i), 0, 0, e.geometry) for i in ids]
    )
    want = np.asarray(jax.jit(e.forward)(e.params, crops))
    np.testing.assert_allclose(features[name], want, rtol=1e-5, atol=1e-6, err_msg=name)
  assert len({meta['features'][n]['preprocessing'].split(';')[0] for n in extractors}) == 3


def test_vits_still_follow_one_other_geometry(config):
  """With one geometry among the other extractors, the ViTs take it (one pipeline), as before."""
  config.features = ('color_grid', 'siglip')
  (group,) = registry.build_groups(config)
  assert group['siglip'].geometry == group['color_grid'].geometry


def test_predict_cuts_each_geometry_as_the_store(config, tmp_path):
  """A model trained on the three-geometry store scores image files exactly as its head scores
  the stored features of the same images (one fold, so the prediction is that fold's)."""
  extract.extract(config, str(tmp_path))
  config.data.run_folds = (0,)
  config.num_epochs, config.batch_size, config.steps_per_call, config.eval_batch_size = 1, 4, 1, 4
  for name in config.features:
    config.model.branch_units[name] = (8,)
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(config, workdir)

  p = predict.Predictor(None, workdir)  # the recorded config
  assert [sorted(g) for g in p.groups] == [['resmem'], ['color_grid'], ['siglip']]
  ids, stored, _ = store.read_store(config.data.features_dir)
  paths = [os.path.join(config.data.dir, i) for i in ids]
  scores, _, errors = p.predict_paths(paths, batch_size=8)
  assert errors == [''] * len(ids)

  dims = {n: a.shape[1] for n, a in stored.items()}
  parts = run_parts.build_parts(p.config, None, dims, p.mesh)  # the head on stored features
  params, meta, _ = parts.restore(os.path.join(workdir, 'fold_0'), config.eval.checkpoint)
  consts = predict._consts(meta, dims)
  raw = {n: np.asarray(a, np.float32) for n, a in stored.items()}
  out = parts.model.apply({'params': params}, consts.standardize(raw), train=False)
  want, _ = steps.scores_and_probs(parts.model, out, consts.values)
  np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-6)

  arrays = [np.asarray(Image.open(path).convert('RGB')) for path in paths[:3]]
  scored = api.load(workdir).score(arrays)  # arrays are cut per geometry too
  np.testing.assert_allclose([r.score for r in scored], want[:3], rtol=1e-5, atol=1e-6)


def test_on_the_fly_features_of_two_geometries_are_refused_naming_the_store_route(config):
  """Training computes features from one decoded image per row: two geometries are refused, with
  extraction named as the way to fuse them."""
  with pytest.raises(InputError, match=r'want different inputs .*extract them into a store'):
    registry.on_the_fly(config, [os.path.join(config.data.dir, '00.png')])
