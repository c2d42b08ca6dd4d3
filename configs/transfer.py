"""Cross-dataset evaluation (the paper's Tables 2-3) on the synthetic default: the CNN+IC K=4
fold ensemble of configs/table1_cnn_ic_mlp_k4.py scores three other synthetic datasets. The
workdir is that trained run; results go to WORKDIR/transfer.json and WORKDIR/transfer/.

python main.py --mode=transfer --config=configs/transfer.py \
  --workdir=/tmp/memjax/table1/cnn_ic_mlp_k4

configs/transfer_paper.py lists the paper's real datasets instead.
"""

import ml_collections

from configs import k4


def dataset(data: dict, about: str, *, seed=None, first_row: int = 0, paper=None):
  """One config.transfer.datasets entry (memjax/transfer.py documents the fields)."""
  return ml_collections.ConfigDict(
    {'data': data, 'seed': seed, 'first_row': first_row, 'paper': paper, 'about': about}
  )


def get_config():
  config = k4.get_config()
  unseen = {'synthetic': {'num_examples': 20_000}}  # rows 15,000+ were never trained on
  config.transfer.datasets = ml_collections.ConfigDict(
    {
      'heldout': dataset(unseen, 'unseen rows, same generator', first_row=15_000),
      'noisier_labels': dataset(
        {'synthetic': {'num_examples': 20_000, 'score_noise': 1.2}},
        'unseen rows, twice the label noise',
        first_row=15_000,
      ),
      'other_domain': dataset(
        {'synthetic': {'num_examples': 5_000}}, 'another generator (seed 1)', seed=1
      ),
    }
  )
  return config
