"""configs/sweep_k.py at a size a 2-core CPU sweeps in ~15 min: 6,000 synthetic rows, 5 folds,
5 epochs per K (K = 2..8, one workdir per K). Re-running resumes.

python main.py --config=configs/sweep_k_small.py --workdir=/tmp/memjax/sweep_small --mode=sweep
"""

from configs import sweep_k


def get_config():
  config = sweep_k.get_config()
  config.data.synthetic.num_examples = 6000
  config.num_epochs = 5
  config.compile_cache = True  # trials and K values with equal shapes compile once
  return config
