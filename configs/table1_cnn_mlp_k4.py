"""Table 1, row 'CNN MLP K=4': the fusion MLP on the CNN feature alone, K=4 classes.

python main.py --config=configs/table1_cnn_mlp_k4.py --workdir=/tmp/memjax/table1/cnn_mlp_k4
"""

from configs import default


def get_config():
  config = default.get_config()
  config.features = ('cnn',)
  config.num_classes = 4
  return config
