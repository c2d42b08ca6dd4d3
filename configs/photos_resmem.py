"""The photos recipe (`configs/photos.py`) on ResMem's features: the ResNet-152 pool + its score.

ResMem (`pip install resmem`; its weights are under the ResMem Non-commercial License, (c) 2021
The University of Chicago: noncommercial use only) is a ResNet-152 fine-tuned on LaMem and
MemCat with its own memorability head. The feature is `output='pooled_score'`: the ResNet's
2048-d average pool and ResMem's own score (2049-d), extracted once at ResMem's preprocessing
(the whole image stretched to 256 x 256, centre 227 crop). `weights` None reads the installed
resmem package's model.pt (memjax finds it without importing the package); or give the path.

FLAGS="--config=configs/photos_resmem.py --config.data.dir=../shared/data/lnsim-dev \\
  --config.data.features_dir=/tmp/lnsim/features_resmem"
python main.py $FLAGS --workdir=/tmp/memjax/photos_resmem --mode=extract
python main.py $FLAGS --workdir=/tmp/memjax/photos_resmem          # train + test, 15 folds

Measured on lnsim-dev (1,316 photos; 2026-12-03, the 2-core CPU machine shared with other jobs;
mean +- SD over the 15 test folds of configs/photos.py's protocol):
* ResMem's own score, no training (`resmem.score_images`, or this store's last column): Spearman
  0.500 +- 0.040 (0.501 over all photos at once);
* this config (ResMem pooled + score, 2049-d): 0.5939 +- 0.0384 (extraction 33 min at ~0.66
  images/s on the busy CPU; training 9.5 min);
* ResMem fused with Lite0 + stages 3-6 (`--config.features="('resmem','efficientnet')"`):
  0.6214 +- 0.0324 (measured on two stores joined by image id; `--mode=extract` now writes both
  into one store, decoding each image once per geometry). `--mode=predict` still needs features
  of one geometry.
* configs/photos.py (Lite0 + stages 3-6), rerun beside them: 0.5506 +- 0.0437 (as in the README).
Paired per test fold against configs/photos.py: this config +0.043 +- 0.038, better on 14 of 15
folds; the fused features +0.071 +- 0.023, better on 15 of 15; ResMem's zero-shot score -0.050
+- 0.037 (better on 2 of 15).
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
  config.features = ('resmem',)
  return config
