"""Exact RBF SVR on offline features of a folder of photos (`image_folder`), tuned inside each
training fold: scikit-learn's `make_pipeline(StandardScaler(), SVR(kernel='rbf', C, epsilon,
gamma))`, C / epsilon / gamma chosen by Optuna TPE (40 trials) on the fold's validation rows,
then refitted on training + validation rows; no Nystroem approximation. Same folds as the MLP
configs; each fold's `eval.json` records the scikit-learn `params`.

FLAGS="--config=configs/baseline_photos_svr.py --config.data.dir=../shared/data/lnsim-dev \\
  --config.data.features_dir=/tmp/lnsim/features_lite0"
python main.py $FLAGS --workdir=/tmp/lnsim/runs/svr_lite0_seed0 --mode=baseline \\
  --config.seed=0                           # fold seed 0; also run 1 and 2
(with config.data.fold_seeds in fold_data.plan_folds: --config.data.fold_seeds='(0, 1, 2)'
in one run.) Features from `--mode=extract` with `--config.features="('efficientnet',)"`.

Measured on lnsim-dev (1,316 photos), EfficientNet-Lite0, 5 folds x fold seeds 0, 1, 2 (15
folds), 2026-11-30: mean Spearman 0.475, SD over the 15 folds 0.036 (per seed 0.474 +- 0.042,
0.467 +- 0.043, 0.483 +- 0.029); Pearson 0.478, MSE 0.0148; predicted 5th-95th percentiles
0.50-0.72 vs true 0.36-0.81 (range_ratio 0.49); 220-478 s per fold seed on 2 CPU cores shared
with other jobs. Lite1 0.473 +- 0.055, Lite2 0.478 +- 0.041 on the same folds.
Tuning on the ~105 validation rows of a fold is noisy: scoring each trial by an inner 5-fold CV
of the training + validation rows instead (`config.baseline.tune_folds=5`, once
configs/default.py has the field; 5x the fits) gave 0.513 +- 0.054 and 0.488 +- 0.047 on fold
seeds 0 and 1 (0.501 +- 0.049 over those 10 folds, against 0.470 +- 0.040 val-tuned).
EfficientNet-Lite0 pooled at depths 3,4,5,6 (1704-d): 0.522 +- 0.040 over the 15 folds.
Other feature stores: /work/notes/baselines-readme.md (docs/real-photos.md).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.name = 'image_folder'
  config.features = ('efficientnet',)
  config.baseline.method = 'svr'
  config.baseline.approximation = 'none'  # exact: scikit-learn's SVR, no Nystroem
  config.baseline.tune_rows = 0  # every training row in each tuning fit
  config.baseline.fit_rows = 0  # every training + validation row in the final fit
  config.baseline.num_trials = 40  # 3 hyper-parameters
  config.baseline.startup_trials = 10
  return config
