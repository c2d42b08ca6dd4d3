"""The paper's best model: CNN + semantic features, K=4 classes, 5-fold CV, batch 16, 10 epochs.

python main.py --config=configs/k4.py --workdir=/tmp/memjax/k4
python main.py --config=configs/k4.py --workdir=/tmp/memjax/k4 --mode=evaluate
"""

from configs import default


def get_config():
  config = default.get_config()
  config.features = ('cnn', 'semantic')
  config.num_classes = 4
  config.batch_size = 16
  config.num_epochs = 10
  return config
