"""The report: Table 1 beside the paper's numbers, per-fold bars and scatter plots, the K sweep,
the search, the cross-dataset table (and the paper's Fig. 3 when the data has images), from the
workdirs the experiment configs' commands write:

python main.py --config=configs/report.py --workdir=/tmp/memjax/report --mode=report

Runs at the small sizes of configs/sweep_k_small.py and configs/search_small.py:

python main.py --config=configs/report.py --workdir=/tmp/memjax/report --mode=report \
  --config.report.sweep=/tmp/memjax/sweep_small --config.report.search=/tmp/memjax/search_small
"""

import ml_collections

from configs import default

RUNS = '/tmp/memjax/table1'


def get_config():
  config = default.get_config()
  for row in ('cnn_svr', 'cnn_mlp_k2', 'cnn_mlp_k4', 'ic_svr', 'ic_mlp_k4', 'cnn_ic_mlp_k4'):
    config.report.table1[row] = f'{RUNS}/{row}'
  config.report.extra_rows = ml_collections.ConfigDict(
    {'IC KNN': f'{RUNS}/ic_knn', 'IC tree': f'{RUNS}/ic_tree'}
  )
  config.report.sweep = '/tmp/memjax/sweep'
  config.report.search = '/tmp/memjax/search'
  config.report.transfer = f'{RUNS}/cnn_ic_mlp_k4'
  config.report.scatter_rows = ('cnn_ic_mlp_k4', 'ic_svr')
  return config
