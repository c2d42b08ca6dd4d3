"""A tiny configuration for tests: small easy data, 2 folds, 3 epochs, small layers.

python main.py --config=configs/test.py --workdir=/tmp/memjax/test
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.synthetic.num_examples = 800
  config.data.synthetic.latent_dim = 2  # an easy signal, learnt in seconds
  config.data.synthetic.feature_noise = 0.5
  config.data.synthetic.cnn_dim = 64
  config.data.synthetic.semantic_dim = 32
  config.data.num_folds = 2
  config.num_epochs = 3
  config.batch_size = 16
  config.steps_per_call = 5
  config.eval_batch_size = 64
  config.model.branch_units.cnn = (16,)
  config.model.branch_units.semantic = (16,)
  config.model.hidden_units = (8,)
  config.model.dropout = 0.1
  config.optimizer.learning_rate = 3e-3
  config.log_every_secs = 1.0
  return config
