"""The paper's other baseline (not shown in its Table 1): KNN regression on the IC-based
feature, tuned by Optuna TPE inside each training fold (neighbours, weighting, metric).

python main.py --mode=baseline --config=configs/baseline_ic_knn.py \
  --workdir=/tmp/memjax/table1/ic_knn
"""

from configs import default


def get_config():
  config = default.get_config()
  config.features = ('semantic',)
  config.baseline.method = 'knn'
  return config
