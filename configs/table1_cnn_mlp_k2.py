"""Table 1, row 'CNN MLP K=2': the fusion MLP on the CNN feature alone, K=2 classes.

python main.py --config=configs/table1_cnn_mlp_k2.py --workdir=/tmp/memjax/table1/cnn_mlp_k2
"""

from configs import default


def get_config():
  config = default.get_config()
  config.features = ('cnn',)
  config.num_classes = 2
  return config
