"""Fine-tuning EfficientNet-Lite0 end to end on a folder of photos (docs/fine-tuning.md).

The real-photos recipe of `configs/photos.py` (Lite0's pooled head plus its stages 3-6,
standardised per training fold; regression head; parameter EMA; 5-member ensemble; the last
checkpoint) with the features computed from the images inside the step, so the backbone can
train:
* `finetune.mode`: what moves ('last': the last `last_blocks` MBConv blocks and the 1x1 head
  conv; 'lora': rank-`lora_rank` adapters on the blocks' 1x1 convolutions; 'all'; 'none');
* the backbone's own learning rate and weight decay, frozen for the first `unfreeze_epoch`
  epochs (the head trains alone; only the forward pass of the backbone runs), then a warm-up;
* on-device augmentation: random resized crops of 50-100% of the area and horizontal flips.
Evaluation and prediction use the centre crop and the fine-tuned backbone.

Measured on lnsim-dev (5 folds of seed 0; docs/fine-tuning.md): 0.5406 +- 0.0570
against 0.5309 +- 0.0550 for the same protocol with the backbone frozen (`finetune.mode=none`),
higher on every fold; LoRA on every block and full fine-tuning did not beat it on the folds
measured (3 and 2).

FLAGS="--config=configs/photos_finetune.py --config.data.dir=../shared/data/lnsim-dev"
python main.py $FLAGS --workdir=/tmp/memjax/photos_finetune                  # train + test
python main.py $FLAGS --workdir=/tmp/memjax/photos_finetune --mode=predict \\
  --config.predict.input=DIR
"""

from configs import photos


def get_config():
  config = photos.get_config()
  config.data.fold_seeds = ()  # 5 folds: fine-tuning costs ~10x the frozen recipe per fold
  config.data.on_the_fly = True
  config.finetune.mode = 'last'
  config.finetune.last_blocks = 2
  config.finetune.learning_rate = 1e-4
  config.finetune.weight_decay = 1e-4
  config.finetune.unfreeze_epoch = 4.0
  config.finetune.warmup_epochs = 0.5
  config.augment.crop_scale = (0.5, 1.0)
  config.augment.crop_ratio = (3 / 4, 4 / 3)
  config.augment.flip = True
  config.num_epochs = 6  # 4 with the head alone, 2 fine-tuning (docs/fine-tuning.md: measured so)
  config.eval_batch_size = 64  # images through the backbone at once
  return config
