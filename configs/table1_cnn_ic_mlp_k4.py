"""Table 1, row 'CNN+IC MLP K=4': the paper's best model (the same run as configs/k4.py).

python main.py --config=configs/table1_cnn_ic_mlp_k4.py --workdir=/tmp/memjax/table1/cnn_ic_mlp_k4
"""

from configs import k4


def get_config():
  return k4.get_config()
