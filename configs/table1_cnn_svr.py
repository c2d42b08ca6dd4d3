"""Table 1, row 'CNN SVR': RBF SVR on the CNN feature, tuned by Optuna TPE inside each training
fold (Nystroem approximation: 1000 components + linear SVR; `--config.baseline.approximation=none`
runs exact SVR, slow at full size).

python main.py --mode=baseline --config=configs/table1_cnn_svr.py \
  --workdir=/tmp/memjax/table1/cnn_svr
"""

from configs import default


def get_config():
  config = default.get_config()
  config.features = ('cnn',)
  config.baseline.method = 'svr'
  return config
