"""The K sweep: the CNN+IC fusion MLP trained and evaluated for K = 2..8, one workdir per K
(WORKDIR/k{K}/; WORKDIR/k4 is the same run as configs/k4.py). Re-running resumes.

python main.py --config=configs/sweep_k.py --workdir=/tmp/memjax/sweep --mode=sweep
"""

from configs import k4


def get_config():
  config = k4.get_config()
  config.sweep.num_classes = (2, 3, 4, 5, 6, 7, 8)
  config.compile_cache = True  # trials and K values with equal shapes compile once
  return config
