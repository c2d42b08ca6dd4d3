"""Ridge regression on offline features of a folder of photos (`image_folder`), tuned inside each
training fold: scikit-learn's `make_pipeline(StandardScaler(), RidgeCV(alphas))` fitted on the
fold's training + validation rows, alpha picked by RidgeCV's leave-one-out error on those rows
(`baseline.method='ridge_cv'`; no test row is seen). Same folds as the MLP configs.

FLAGS="--config=configs/baseline_photos_ridge.py --config.data.dir=../shared/data/lnsim-dev \\
  --config.data.features_dir=/tmp/lnsim/features_lite0"
python main.py $FLAGS --workdir=/tmp/lnsim/runs/ridgecv_lite0_seed0 --mode=baseline \\
  --config.seed=0                           # fold seed 0; also run 1 and 2
(with config.data.fold_seeds in fold_data.plan_folds: --config.data.fold_seeds='(0, 1, 2)'
in one run.) Features from `--mode=extract` with `--config.features="('efficientnet',)"`.

Measured on lnsim-dev (1,316 photos), EfficientNet-Lite0, 5 folds x fold seeds 0, 1, 2 (15
folds), 2026-11-30: mean Spearman 0.493, SD over the 15 folds 0.046 (per seed 0.498 +- 0.055,
0.488 +- 0.058, 0.493 +- 0.030); Pearson 0.495, MSE 0.0142; predicted 5th-95th percentiles
0.51-0.72 vs true 0.36-0.81 (range_ratio 0.47); 51-62 s per fold seed on 2 shared cores.
`--config.baseline.method=ridge` (alpha by Optuna TPE, 20 trials on the fold's validation rows)
gets 0.477 +- 0.049 on the same folds: a few hundred validation rows make a noisy tuner.
Other feature stores: see /work/notes/baselines-readme.md (docs/real-photos.md).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.name = 'image_folder'
  config.features = ('efficientnet',)
  config.baseline.method = 'ridge_cv'  # alpha by leave-one-out on train+val rows
  config.baseline.fit_rows = 0  # every training + validation row in the fit
  return config
