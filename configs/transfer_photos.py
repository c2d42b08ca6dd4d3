"""Cross-dataset evaluation for the real-photos recipe: the fold ensemble of a configs/photos.py
workdir (15 models) scores a second folder of photos with a `scores.csv`, whose features were
extracted into its own store with the same extractor settings.

F=/data/other_photos
python main.py --mode=extract --config=configs/photos.py --config.data.dir=$F \\
  --config.data.features_dir=${F}_features --workdir=/tmp/memjax/other_extract
python main.py --mode=transfer --config=configs/transfer_photos.py \\
  --config.data.dir=../shared/data/lnsim-dev \\
  --config.data.features_dir=/tmp/lnsim/features_lite0_pool3456 \\
  --config.transfer.datasets.photos.data.dir=$F \\
  --config.transfer.datasets.photos.data.features_dir=${F}_features --workdir=/tmp/memjax/photos

Results: WORKDIR/transfer.json (Spearman of the fold ensemble and of each fold) and
WORKDIR/transfer/photos.npz (per-image predictions).
"""

import ml_collections
from ml_collections import config_dict

from configs import photos
from configs.transfer import dataset


def get_config():
  config = photos.get_config()
  config.transfer.datasets = ml_collections.ConfigDict(
    {
      'photos': dataset(
        {
          'name': 'image_folder',
          'dir': config_dict.placeholder(str),  # set on the command line (above)
          'features_dir': config_dict.placeholder(str),
        },
        'a second folder of photos with scores.csv',
      )
    }
  )
  return config
