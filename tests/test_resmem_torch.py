"""memjax's ResMem (Flax) == an independent torch.nn ResMem on the same `model.pt`, from JPEGs.

The file holds random weights in the resmem package's `model.pt` layout
(tests/resmem_reference.py's `random_state_dict`, written without torch by tests/torch_files.py).
torch itself reads it (`torch.load`) into tests/torch_resnet_reference.py's `ResMem` (torchvision's
ResNet layout and names, resmem's head) with `strict=True`; memjax reads it with its torch-free
reader. Photos of mixed aspect ratios go through resmem's transform in the reference (PIL) and
through memjax's decoder and pipeline; score and pooled feature must agree to 1e-4 max abs.
The network is narrow (width 4) with ResNet-152's stage layout cut to (2, 2, 3, 2) blocks;
benchmarks/resmem_check.py compares the real file with resmem's own code.
"""

import jax
import mixed_jpegs
import numpy as np
import pytest
import resmem_reference
import torch_files
from PIL import Image
from references import require

from memjax.features import images
from memjax.features.resmem import extractor as resmem

torch = require('torch')
import torch_resnet_reference as torch_ref  # noqa: E402  (needs torch)

BLOCKS = (2, 2, 3, 2)
ALEX, HEAD = (6, 8, 12, 12, 8), (32, 32, 16, 16, 16, 16)
TOLERANCE = 1e-4


@pytest.fixture(scope='module')
def model_file(tmp_path_factory) -> str:
  tensors = resmem_reference.random_state_dict(BLOCKS, 4, 10, ALEX, HEAD, seed=0)
  path = str(tmp_path_factory.mktemp('resmem') / 'model.pt')
  torch_files.save_zip(path, {k: torch_files.tensor(v) for k, v in tensors.items()})
  return path


@pytest.fixture(scope='module')
def jpegs(tmp_path_factory) -> list[str]:
  return mixed_jpegs.write(str(tmp_path_factory.mktemp('jpegs')))


def test_torch_reference_equals_memjax(model_file, jpegs):
  model = torch_ref.ResMem(BLOCKS, 4, 10, ALEX, HEAD)
  model.load_state_dict(torch.load(model_file, map_location='cpu'), strict=True)
  model.eval()
  pixels = []
  for path in jpegs:
    with Image.open(path) as image:
      pixels.append(torch_ref.transformer(image.convert('RGB')))
  with torch.no_grad():
    pooled, score = (v.numpy() for v in model(torch.stack(pixels)))
  e = resmem.make_extractor(model_file, 'pooled_score')
  batch = next(images.image_batches(
    jpegs, batch_size=len(jpegs), resize_to=e.resize_to, image_size=e.image_size,
    geometry=e.geometry,
  ))  # fmt: skip
  # The same pixels: memjax's decoder and geometry are resmem's transform, bit for bit.
  want_pixels = np.stack([np.round(p.permute(1, 2, 0).numpy() * 255) for p in pixels])
  np.testing.assert_array_equal(batch['image'], want_pixels.astype(np.uint8))
  got = np.asarray(jax.jit(e.forward)(e.params, batch['image']))
  score_diff = float(np.abs(got[:, -1] - score).max())
  pooled_diff = float(np.abs(got[:, :-1] - pooled).max())
  print(f'score max abs {score_diff:.1e}; pooled max abs {pooled_diff:.1e} '
        f'(scale {np.abs(pooled).max():.1f})')  # fmt: skip
  assert score_diff <= TOLERANCE and pooled_diff <= TOLERANCE
  # Not a degenerate agreement: scores unsaturated and different per photo, features O(1).
  assert score.min() > 0.02 and score.max() < 0.98 and np.ptp(score) > 100 * TOLERANCE
  assert np.abs(pooled).max() > 0.5
