"""Table 1, row 'IC SVR': RBF SVR on the IC-based semantic feature, tuned by Optuna TPE inside
each training fold (Nystroem approximation: 1000 components + linear SVR).

python main.py --config=configs/table1_ic_svr.py --workdir=/tmp/memjax/table1/ic_svr --mode=baseline
"""

from configs import default


def get_config():
  config = default.get_config()
  config.features = ('semantic',)
  config.baseline.method = 'svr'
  return config
