"""The photos recipe (`configs/photos.py`) on ResMem's features fused with EfficientNet-Lite0's.

ResMem (`pip install resmem`; its weights are under the ResMem Non-commercial License, (c) 2021
The University of Chicago: noncommercial use only) is a ResNet-152 fine-tuned on LaMem and
MemCat with its own memorability head. Its feature here is `output='pooled_score'`: the ResNet's
2048-d average pool and ResMem's own score (2049-d), at ResMem's preprocessing (the whole image
stretched to 256 x 256, centre 227 crop); beside it configs/photos.py's Lite0 pooled head and
stages 3-6 (1704-d, its 224 crop of 256). `--mode=extract` writes both into one store, decoding
each image once per geometry, and `--mode=predict` cuts new images the same two ways. ResMem's
`weights` None reads the installed resmem package's model.pt (memjax finds it without importing
the package); or give the path.

FLAGS="--config=configs/photos_resmem.py --config.data.dir=../shared/data/lnsim-dev \\
  --config.data.features_dir=/tmp/lnsim/features_resmem_lite0"
python main.py $FLAGS --workdir=/tmp/memjax/photos_resmem --mode=extract
python main.py $FLAGS --workdir=/tmp/memjax/photos_resmem          # train + test, 15 folds
memjax predict --workdir=/tmp/memjax/photos_resmem --input=/data/new_photos

Measured on lnsim-dev (1,316 photos; 2026-12-03, the 2-core CPU machine shared with other jobs;
mean +- SD over the 15 test folds of configs/photos.py's protocol):
* this config (ResMem pooled + score, fused with Lite0 + stages 3-6): 0.6214 +- 0.0324
  (training 13 min);
* ResMem alone (`--config.features="('resmem',)"`, 2049-d): 0.5939 +- 0.0384 (ResMem's
  extraction 33 min at ~0.66 images/s on the busy CPU);
* ResMem's own score, no training (`configs/resmem_score.py`, or the last column of ResMem's
  feature): Spearman 0.500 +- 0.040 (0.501 over all photos at once);
* configs/photos.py (Lite0 + stages 3-6), rerun beside them: 0.5506 +- 0.0437 (as in the README).
Paired per test fold against configs/photos.py: this config +0.071 +- 0.023, better on 15 of 15
folds, beyond the fold noise; ResMem alone +0.043 +- 0.038, better on 14 of 15; ResMem's
zero-shot score -0.050 +- 0.037 (better on 2 of 15).
"""

import ml_collections
from ml_collections import config_dict

from configs import photos


def get_config():
  config = photos.get_config()
  spec = config.extractors.resmem = ml_collections.ConfigDict()
  spec.kind = 'resmem'  # memjax/features/resmem/
  spec.variant = config_dict.placeholder(str)  # Unused by resmem.
  spec.weights = config_dict.placeholder(str)  # model.pt; None: the installed resmem package's.
  spec.projection = config_dict.placeholder(str)  # Unused by resmem.
  spec.output = 'pooled_score'  # 'pooled' (2048-d), 'score' (ResMem's) or both.
  spec.pool_depths = ()  # Unsupported by resmem.
  spec.flip = False  # Average the features of the image and its horizontal flip.
  spec.dtype = 'float32'  # resmem computes in float32.
  config.model.branch_units.resmem = (256,)  # as Lite0's
  config.features = ('resmem', 'efficientnet')
  return config
