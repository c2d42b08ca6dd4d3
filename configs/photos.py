"""The recommended recipe for real photo datasets (hundreds to tens of thousands of images).

The paper's fusion MLP on frozen features, made reliable on small data (docs/real-photos.md):
* features: EfficientNet-Lite0's pooled head plus the pooled outputs of its stages 3-6
  (1704-d; `pool_depths`), extracted once (`--mode=extract`), standardised with each training
  fold's mean and SD (the stages' scales differ by orders of magnitude);
* the regression head (a sigmoid score trained with MSE): on these photos it beat the K-class
  head with every feature set tried (K=8 with ordinal label smoothing 0.3 and class-mean s_k,
  the best K-class variant, is `--config.model.head=classification`);
* an EMA of the parameters (decay 0.99) and the last epoch's checkpoint instead of the best one
  by validation Spearman, which on ~100 validation photos picks noise (one fold of the paper's
  recipe picked epoch 1);
* 5 members trained together per fold (own initialisation and dropout), predictions averaged;
* repeated cross-validation: the 5 folds under fold seeds 0, 1, 2 (15 folds; predict averages
  all 15 models).

FLAGS="--config=configs/photos.py --config.data.dir=../shared/data/lnsim-dev \\
  --config.data.features_dir=/tmp/lnsim/features_lite0_pool3456"
python main.py $FLAGS --workdir=/tmp/memjax/photos --mode=extract   # ~2 min for 1,316 photos
python main.py $FLAGS --workdir=/tmp/memjax/photos                  # train + test, 15 folds
python main.py $FLAGS --workdir=/tmp/memjax/photos --mode=predict --config.predict.input=DIR

Measured on lnsim-dev (1,316 photos; mean +- SD of test Spearman over the 15 folds;
docs/real-photos.md has the table and the commands): 0.5506 +- 0.0437 with these features, against
0.522 for an exact RBF SVR tuned inside the same training folds on the same features. The EMA
assumes a few hundred steps per fold (here 590); on much smaller data lower `ema_decay`.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.name = 'image_folder'
  config.data.fold_seeds = (0, 1, 2)
  config.features = ('efficientnet',)
  config.standardize = True
  config.extractors.efficientnet.kind = 'efficientnet_lite0'
  config.extractors.efficientnet.pool_depths = (3, 4, 5, 6)
  config.model.head = 'regression'
  config.ema_decay = 0.99
  config.eval.checkpoint = 'latest'
  config.model.ensemble_size = 5
  return config
