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
  # Training recipe beyond the paper (all off by default; configs/photos.py turns them on).
  config.standardize = False  # Standardise features with the training fold's mean and SD.
  config.label_smoothing = 0.0  # Share of each class target moved to its neighbouring classes.
  config.ema_decay = 0.0  # Evaluate an EMA of the parameters with this decay (0: off).
  config.log_every_secs = 30.0  # Seconds between progress lines (steps/s, ETA).
  config.compile_cache = False  # main.py: persistent XLA compile cache in WORKDIR/jax_cache.
  config.resume_changed = False  # Resume a workdir whose recorded run config differs (recorded).
  config.cpu_library_fusions = 'auto'  # XLA CPU library fusions: 'auto' (measured), 'on', 'off'.

  config.data = ml_collections.ConfigDict()
  config.data.name = 'synthetic'  # 'synthetic' (built-in default), 'lamem' or 'image_folder'.
  config.data.dir = config_dict.placeholder(str)  # Dataset folder (LaMem: holds splits/, images/).
  config.data.csv = config_dict.placeholder(str)  # image_folder: scores CSV; None: dir/scores.csv.
  config.data.image_column = 'image'  # image_folder: CSV column of image paths (relative to dir).
  config.data.score_column = 'score'  # image_folder: CSV column of scores in [0, 1].
  config.data.features_dir = config_dict.placeholder(str)  # Feature store folder.
  config.data.on_the_fly = False  # Compute features from images inside the jitted steps.
  config.data.device_resident = 'auto'  # Training rows on the devices: 'auto' (fit), 'on', 'off'.
  config.data.protocol = 'cv5'  # 'cv5': k-fold CV, one label version; 'official': given splits.
  config.data.label_version = 1  # LaMem labels used by 'cv5' (those of split files _1 .. _5).
  config.data.num_folds = 5  # Folds of 'cv5' ('official' has one fold per given split).
  config.data.run_folds = ()  # Folds to run, e.g. (0, 1); empty: all of them.
  config.data.val_fraction = 0.1  # Share of each training fold held out to pick checkpoints.
  config.data.fold_seeds = ()  # cv5 repeated under these fold seeds (e.g. (0, 1, 2)); (): seed.

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
    {
      'cnn': (512,),
      'semantic': (512,),
      'efficientnet': (256,),
      'clip': (256,),
      'siglip': (256,),
      'dinov2': (256,),
      'dinov3': (256,),
      'color_grid': (32,),
    }
  )  # Dense widths of each feature's branch.
  config.model.hidden_units = (256,)  # Dense widths after the concatenation.
  config.model.dropout = 0.5  # Dropout rate after every hidden Dense layer.
  config.model.activation = 'relu'  # 'relu' or 'tanh'.
  config.model.ensemble_size = 1  # Members trained together per fold (own init and dropout).

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = 'adam'  # 'adam', 'rmsprop' or 'sgd'.
  config.optimizer.learning_rate = 1e-3  # Peak learning rate.
  config.optimizer.schedule = 'constant'  # 'constant', 'cosine' or 'warmup_cosine'.
  config.optimizer.warmup_epochs = 0.0  # Linear warm-up length ('warmup_cosine' only).
  config.optimizer.weight_decay = 0.0  # Decoupled for adam (AdamW), L2 for rmsprop and sgd.
  config.optimizer.momentum = 0.9  # sgd momentum (0: plain sgd).
  config.optimizer.rmsprop_decay = 0.9  # rmsprop moving-average decay.
  config.optimizer.eps = 1e-7  # rmsprop epsilon (Keras' default).

  # Frozen extractors: feature name -> kind and local weight files (memjax/features/registry.py).
  config.extractors = ml_collections.ConfigDict()
  for name, kind in (
    ('cnn', 'vgg16'),
    ('semantic', 'vse'),
    ('efficientnet', 'efficientnet_lite0'),
    ('clip', 'clip'),
    ('siglip', 'siglip'),
    ('dinov2', 'dinov2'),
    ('dinov3', 'dinov3'),
    ('color_grid', 'color_grid'),
  ):
    spec = config.extractors[name] = ml_collections.ConfigDict()
    spec.kind = kind  # memjax/features/registry.py lists the kinds.
    spec.variant = config_dict.placeholder(str)  # Size of a family, e.g. clip 'b16'; None: default.
    spec.weights = config_dict.placeholder(str)  # Local weight file (.h5/.pth/.safetensors/.npz).
    spec.projection = config_dict.placeholder(str)  # vse: projection .npz.
    spec.output = config_dict.placeholder(str)  # Which output is the feature; None: the kind's.
    spec.pool_depths = ()  # Also mean-pool these intermediate stages/blocks (concatenated).
    spec.flip = False  # Average the features of the image and its horizontal flip.
    spec.dtype = 'float32'  # Compute dtype: 'float32' or 'bfloat16' (GPU/TPU).

  # Fine-tuning the extractors (config.data.on_the_fly only; memjax/finetune.py).
  config.finetune = ml_collections.ConfigDict()
  config.finetune.mode = 'none'  # 'none' (frozen), 'last' (last N blocks), 'all' or 'lora'.
  config.finetune.last_blocks = 2  # 'last': blocks trained; 'lora': blocks adapted (0: all).
  config.finetune.lora_rank = 8  # 'lora': rank r of the adapters W + alpha / r * A B.
  config.finetune.lora_alpha = config_dict.placeholder(float)  # 'lora': alpha; None: r.
  config.finetune.learning_rate = 1e-4  # Peak learning rate of the backbone.
  config.finetune.weight_decay = 0.0  # Weight decay of the backbone (as config.optimizer's).
  config.finetune.unfreeze_epoch = 0.0  # Epochs the head trains alone before the backbone.
  config.finetune.warmup_epochs = 0.0  # Linear warm-up of the backbone after it unfreezes.
  config.finetune.remat = False  # Recompute each backbone block in the backward pass (memory).

  # On-device augmentation of training images (config.data.on_the_fly only; memjax/augment.py).
  config.augment = ml_collections.ConfigDict()
  config.augment.crop_scale = (1.0, 1.0)  # Random resized crop: area share range; (1, 1): off.
  config.augment.crop_ratio = (1.0, 1.0)  # Aspect-ratio range of the crop, e.g. (0.75, 1.333).
  config.augment.flip = False  # Random horizontal flip.

  config.extract = ml_collections.ConfigDict()
  config.extract.batch_size = 32  # Images per extraction batch (global, split over devices).
  config.extract.dtype = 'float16'  # Stored feature dtype: 'float16' or 'float32'.
  config.extract.on_error = 'skip'  # Unreadable image: 'skip' (listed in logs/metadata) or 'stop'.

  config.predict = ml_collections.ConfigDict()
  config.predict.input = config_dict.placeholder(str)  # Folder of images, or a CSV of paths.
  config.predict.output = config_dict.placeholder(str)  # CSV to write (default WORKDIR/...).
  config.predict.path_column = 'image'  # Column of image paths when the input is a CSV.
  config.predict.on_error = 'skip'  # Unreadable image: 'skip' (empty score + error) or 'stop'.

  config.eval = ml_collections.ConfigDict()
  config.eval.checkpoint = 'best'  # Checkpoint scored per fold: 'best', 'latest' or a step.
  config.eval.output = config_dict.placeholder(
    str
  )  # evaluate: summary JSON here, WORKDIR untouched.

  # Regression baselines of Table 1 (--mode=baseline, memjax/baselines.py).
  config.baseline = ml_collections.ConfigDict()
  config.baseline.method = 'svr'  # 'svr', 'ridge', 'ridge_cv', 'knn' or 'tree' (decision tree).
  config.baseline.num_trials = 20  # Optuna TPE trials per fold, scored on the fold's val rows.
  config.baseline.startup_trials = 5  # Of these, random trials before TPE models the results.
  config.baseline.tune_rows = 3000  # Train rows each tuning trial fits (seeded subsample; 0: all).
  config.baseline.fit_rows = 0  # Train+val rows of the final fit (seeded subsample; 0: all).
  config.baseline.approximation = 'nystroem'  # svr: 'nystroem' (+ linear SVR) or 'none' (exact).
  config.baseline.tune_folds = 0  # >0: score tuning trials by k-fold CV of train+val; 0: val.
  config.baseline.nystroem_components = 1000  # Kernel features of the Nystroem approximation.

  # K sweep (--mode=sweep, memjax/sweep.py): one train_and_evaluate per K in WORKDIR/k{K}/.
  config.sweep = ml_collections.ConfigDict()
  config.sweep.num_classes = (2, 3, 4, 5, 6, 7, 8)  # The K values trained, in order.

  # Optuna hyper-parameter search of the MLP (--mode=search, memjax/search.py).
  config.search = ml_collections.ConfigDict()
  config.search.storage = config_dict.placeholder(str)  # URL; None: sqlite:///WORKDIR/study.db.
  config.search.study_name = 'memjax'  # Study name inside the storage.
  config.search.num_trials = 20  # Finished (complete or pruned) trials, all workers together.
  config.search.startup_trials = 10  # Random trials before TPE starts modelling the results.
  config.search.pruner_startup_trials = 5  # Trials finished before a trial can be pruned.
  config.search.sampler_seed = config_dict.placeholder(int)  # TPE seed; None: new per worker.
  config.search.units = (32, 1024)  # Log-uniform range of the units of every layer.
  config.search.dropout = (0.0, 0.7)  # Uniform range of the dropout rate.
  config.search.activations = ('relu', 'tanh')  # Activation choices.
  config.search.optimizers = ('adam', 'rmsprop', 'sgd')  # Optimiser choices.
  config.search.learning_rate = (1e-4, 3e-2)  # Log-uniform range of the learning rate.
  config.search.heartbeat_secs = 10  # Heartbeat period of a running trial (detects dead workers).
  config.search.grace_secs = 60  # Seconds without heartbeat before a trial is failed and retried.
  config.search.max_retry = 2  # Times a trial whose worker died is re-queued (same parameters).

  # Cross-dataset evaluation (--mode=transfer, memjax/transfer.py): a trained fold ensemble
  # scores other datasets. name -> {data: overrides of config.data, seed, first_row, paper, about}.
  config.transfer = ml_collections.ConfigDict()
  config.transfer.datasets = ml_collections.ConfigDict()  # See configs/transfer.py for entries.
  config.transfer.output = config_dict.placeholder(str)  # Results folder; None: WORKDIR itself.

  # Tables and figures (--mode=report, memjax/experiments/report.py): which workdir is which result.
  config.report = ml_collections.ConfigDict()
  config.report.table1 = ml_collections.ConfigDict()
  config.report.table1.cnn_svr = config_dict.placeholder(str)  # Workdir of 'CNN SVR'.
  config.report.table1.cnn_mlp_k2 = config_dict.placeholder(str)  # Workdir of 'CNN MLP K=2'.
  config.report.table1.cnn_mlp_k4 = config_dict.placeholder(str)  # Workdir of 'CNN MLP K=4'.
  config.report.table1.ic_svr = config_dict.placeholder(str)  # Workdir of 'IC SVR'.
  config.report.table1.ic_mlp_k4 = config_dict.placeholder(str)  # Workdir of 'IC MLP K=4'.
  config.report.table1.cnn_ic_mlp_k4 = config_dict.placeholder(str)  # 'CNN+IC MLP K=4'.
  config.report.extra_rows = ml_collections.ConfigDict()  # More Table 1 rows: label -> workdir.
  config.report.sweep = config_dict.placeholder(str)  # Workdir of --mode=sweep.
  config.report.search = config_dict.placeholder(str)  # Workdir of --mode=search.
  config.report.transfer = config_dict.placeholder(str)  # Workdir of --mode=transfer.
  config.report.scatter_rows = ('cnn_ic_mlp_k4',)  # Rows whose per-fold scatter plot is drawn.
  config.report.grid_size = 8  # Fig. 3: this many most and least memorable images (if any).
  # Your runs to compare (workdirs, folders of workdirs, globs); set, the report is one row per
  # run instead of Table 1, e.g. --config.report.runs="('/tmp/memjax/photos*',)".
  config.report.runs = ()

  config.distributed = ml_collections.ConfigDict()
  config.distributed.enabled = False  # Call jax.distributed.initialize (several processes).
  config.distributed.coordinator_address = config_dict.placeholder(str)  # 'host:port'; None=auto.
  config.distributed.num_processes = config_dict.placeholder(int)  # None: auto-detect.
  config.distributed.process_id = config_dict.placeholder(int)  # None: auto-detect.
  return config
