"""Hyper-parameter search of the CNN+IC fusion MLP as in the paper: Optuna TPE over the units of
every layer (32..1024), dropout, activation, optimiser and learning rate; objective the mean
5-fold test Spearman at the paper's batch 16 and 10 epochs; median pruning after each fold.
The study is the SQLite file WORKDIR/study.db; run the same command in several shells (or on
several machines with --config.search.storage=postgresql://...) to share it. Afterwards
WORKDIR/best_config.py holds the best trial's config.

python main.py --config=configs/search.py --workdir=/tmp/memjax/search --mode=search
"""

from configs import k4


def get_config():
  config = k4.get_config()
  config.search.num_trials = 50
  config.search.startup_trials = 10
  config.search.pruner_startup_trials = 5
  config.compile_cache = True  # trials and K values with equal shapes compile once
  return config
