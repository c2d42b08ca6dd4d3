"""The paper's other baseline (not shown in its Table 1): decision-tree regression on the
IC-based feature, tuned by Optuna TPE inside each training fold (depth, leaf size, features).

python main.py --mode=baseline --config=configs/baseline_ic_tree.py \
  --workdir=/tmp/memjax/table1/ic_tree
"""

from configs import default


def get_config():
  config = default.get_config()
  config.features = ('semantic',)
  config.baseline.method = 'tree'
  return config
