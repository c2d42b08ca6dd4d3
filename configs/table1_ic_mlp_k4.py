"""Table 1, row 'IC MLP K=4': the fusion MLP on the IC-based semantic feature alone, K=4.

python main.py --config=configs/table1_ic_mlp_k4.py --workdir=/tmp/memjax/table1/ic_mlp_k4
"""

from configs import default


def get_config():
  config = default.get_config()
  config.features = ('semantic',)
  config.num_classes = 4
  return config
