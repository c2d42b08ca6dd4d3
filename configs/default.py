"""Default configuration: every knob memjax reads, one comment each.

Experiment configs import this and override a few fields. Command:
  python main.py --config=configs/default.py --workdir=/tmp/memjax/default
"""

import ml_collections
from ml_collections import config_dict


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0  # Root seed: data generation, folds, parameter init, shuffling, dropout.
  config.features = ('cnn', 'semantic')  # Feature names fed to the model (any subset).
  config.num_classes = 4  # K balanced score classes (2..8); the paper's best is 4.
  config.score_values = 'upper_threshold'  # s_k in m = sum_k p(k) s_k: or 'class_mean'.
  config.num_epochs = 10  # Training epochs per fold (the paper: 10).
  config.batch_size = 16  # Global batch size, split over all devices (the paper: 16).
  config.steps_per_call = 100  # Training steps run inside one jitted lax.scan call.
  config.eval_batch_size = 1024  # Global batch size of evaluation (padded + masked).
  config.log_every_secs = 30.0  # Seconds between progress lines (steps/s, ETA).

  config.data = ml_collections.ConfigDict()
  config.data.name = 'synthetic'  # Dataset: 'synthetic' (the built-in default) or 'lamem'.
  config.data.dir = config_dict.placeholder(str)  # Dataset folder (LaMem: holds splits/).
  config.data.features_dir = config_dict.placeholder(str)  # Feature store folder.
  config.data.protocol = 'cv5'  # 'cv5': k-fold CV, one label version; 'official': given splits.
  config.data.label_version = 1  # LaMem labels used by 'cv5' (those of split files _1 .. _5).
  config.data.num_folds = 5  # Folds of 'cv5' ('official' has one fold per given split).
  config.data.run_folds = ()  # Folds to run, e.g. (0, 1); empty: all of them.
  config.data.val_fraction = 0.1  # Share of each training fold held out to pick checkpoints.

  # The synthetic stand-in for LaMem (memjax/datasets/synthetic.py documents the process).
  config.data.synthetic = ml_collections.ConfigDict()
  config.data.synthetic.num_examples = 15_000  # Rows (LaMem has 58,741); main job < 10 min.
  config.data.synthetic.latent_dim = 8  # Dims of each latent block (shared, cnn-only, sem-only).
  config.data.synthetic.feature_noise = 2.0  # SD of the per-entry noise added to features.
  config.data.synthetic.score_noise = 0.6  # Score noise SD relative to the signal's SD.
  config.data.synthetic.cnn_density = 0.25  # Expected share of non-zero cnn entries.
  config.data.synthetic.cnn_dim = 4096  # Width of the cnn feature (VGG16 fc7).
  config.data.synthetic.semantic_dim = 1024  # Width of the semantic feature (captioning).
  config.data.synthetic.score_decimals = 2  # Scores are rounded: ties, like LaMem's.

  config.model = ml_collections.ConfigDict()
  config.model.head = 'classification'  # 'classification' (K classes) or 'regression' (MSE).
  config.model.branch_units = ml_collections.ConfigDict(
    {'cnn': (512,), 'semantic': (512,)}
  )  # Dense widths of each feature's branch.
  config.model.hidden_units = (256,)  # Dense widths after the concatenation.
  config.model.dropout = 0.5  # Dropout rate after every hidden Dense layer.
  config.model.activation = 'relu'  # 'relu' or 'tanh'.

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = 'adam'  # 'adam', 'rmsprop' or 'sgd'.
  config.optimizer.learning_rate = 1e-3  # Peak learning rate.
  config.optimizer.schedule = 'constant'  # 'constant', 'cosine' or 'warmup_cosine'.
  config.optimizer.warmup_epochs = 0.0  # Linear warm-up length ('warmup_cosine' only).
  config.optimizer.weight_decay = 0.0  # Decoupled for adam (AdamW), L2 for rmsprop and sgd.
  config.optimizer.momentum = 0.9  # sgd momentum (0: plain sgd).
  config.optimizer.rmsprop_decay = 0.9  # rmsprop moving-average decay.
  config.optimizer.eps = 1e-7  # rmsprop epsilon (Keras' default).

  config.eval = ml_collections.ConfigDict()
  config.eval.checkpoint = 'best'  # Checkpoint scored per fold: 'best', 'latest' or a step.

  config.distributed = ml_collections.ConfigDict()
  config.distributed.enabled = False  # Call jax.distributed.initialize (several processes).
  config.distributed.coordinator_address = config_dict.placeholder(str)  # 'host:port'; None=auto.
  config.distributed.num_processes = config_dict.placeholder(int)  # None: auto-detect.
  config.distributed.process_id = config_dict.placeholder(int)  # None: auto-detect.
  return config
