"""A cheap version of configs/search.py for a 2-core CPU: the same search space on 3,000
synthetic rows, 3 folds and 3 epochs per trial (each trial ~30 s), 20 trials. Run it in two
shells at once to see two workers share the SQLite study; kill one and re-run it to resume.

python main.py --config=configs/search_small.py --workdir=/tmp/memjax/search_small --mode=search
"""

from configs import k4


def get_config():
  config = k4.get_config()
  config.data.synthetic.num_examples = 3000
  config.data.num_folds = 3
  config.num_epochs = 3
  config.log_every_secs = 60.0
  config.search.num_trials = 20
  config.search.startup_trials = 8
  config.search.pruner_startup_trials = 4
  config.search.heartbeat_secs = 5
  config.search.grace_secs = 20
  config.compile_cache = True  # trials and K values with equal shapes compile once
  return config
