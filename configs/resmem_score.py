"""ResMem's own memorability score, with no training: the out-of-the-box scorer.

ResMem (Needell and Bainbridge, "Embracing new techniques in deep learning for estimating image
memorability", Computational Brain & Behavior, 2022): a ResNet-152 fine-tuned on LaMem and MemCat
plus its own head, run in JAX by memjax/features/resmem/ from the package's `model.pt`, read
without torch. The weights are under the ResMem Non-commercial License (c) 2021 The University of
Chicago: noncommercial use only. memjax neither depends on nor downloads them:

  pip install resmem   # about 490 MB; or give the path of a model.pt below

memjax predict --config=configs/resmem_score.py --workdir=/tmp/memjax/resmem --input=DIR
  [--config.extractors.resmem.weights=/path/to/model.pt]

writes /tmp/memjax/resmem/predictions.csv (path,score,error), the columns of any regression run.
On lnsim-dev (1,316 photos) the zero-shot score reached Spearman 0.500 +- 0.040 over the test
folds of configs/photos.py's 15 (0.501 on all photos; 2026-12-03, 2-core CPU); trained heads on
its features do better (configs/photos_resmem.py).
"""

from configs import photos_resmem


def get_config():
  config = photos_resmem.get_config()
  config.features = ('resmem',)  # ResMem alone: its score is the prediction
  config.extractors.resmem.output = 'score'  # ResMem's head: the memorability score itself
  config.model.head = 'regression'
  return config
