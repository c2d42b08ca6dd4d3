"""Cross-dataset evaluation as in the paper's Tables 2-3: the LaMem-trained CNN+IC K=4 ensemble
scores other memorability (Table 2) and interestingness (Table 3) datasets. Each dataset is an
image folder with a scores CSV (column `image`, `score`) and its feature store, made first with
`--mode=extract` (the paths below are examples: edit them). Datasets whose files are absent
stop with an error naming the path, so keep only those you have.

python main.py --config=configs/transfer_paper.py --workdir=/data/memjax/lamem_k4 --mode=transfer
"""

import ml_collections

from configs import transfer

# name -> (size, type of images, the paper's Spearman), from the paper's Tables 2 and 3.
PAPER = {
  'isola': (2222, 'Scene categories', 0.59),
  'bylinskii': (1754, 'Scene categories', 0.48),
  'dubey': (850, 'Object segmentation', 0.36),
  'cohendet': (150, 'Rating of emotions', 0.39),
  'libkuman': (703, 'Rating of emotions', -0.02),
  'bainbridge': (2222, 'Face pictures', -0.06),
  'borkin': (410, 'Visualizations', -0.27),
  'mediaeval_interestingness': (7396, 'Movie frames (interestingness)', 0.07),
  'flickr_interestingness': (123185, 'Social network (interestingness)', -0.05),
  'gygli1_interestingness': (2688, 'Scene categories (interestingness)', -0.21),
  'gygli2_interestingness': (2222, 'Scene categories (interestingness)', -0.19),
  'gygli3_interestingness': (3180, 'Webcam pictures (interestingness)', 0.01),
}


def get_config():
  config = transfer.get_config()
  config.data.name = 'lamem'
  config.data.dir = '/data/lamem'
  config.data.features_dir = '/data/lamem_features'
  entries = {}
  for name, (size, about, paper) in PAPER.items():
    data = {
      'name': 'image_folder',
      'dir': f'/data/{name}/images',
      'csv': f'/data/{name}/scores.csv',
      'features_dir': f'/data/{name}/features',
    }
    entries[name] = transfer.dataset(data, f'{about}, {size} images', paper=paper)
  config.transfer.datasets = ml_collections.ConfigDict(entries)
  return config
