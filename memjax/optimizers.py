"""Optax optimiser and learning-rate schedule from `config.optimizer`.

Weight decay: decoupled (AdamW) for adam; added to the gradient (L2) for rmsprop and sgd.
"""

import ml_collections
import optax

from memjax.errors import InputError

NAMES = ('adam', 'rmsprop', 'sgd')
SCHEDULES = ('constant', 'cosine', 'warmup_cosine')


def learning_rate_schedule(
  cfg: ml_collections.ConfigDict, total_steps: int, steps_per_epoch: int
) -> optax.Schedule:
  """Constant, cosine decay to 0 over training, or linear warm-up then cosine decay."""
  lr = cfg.learning_rate
  if cfg.schedule == 'constant':
    return optax.constant_schedule(lr)
  if cfg.schedule == 'cosine':
    return optax.cosine_decay_schedule(lr, decay_steps=max(total_steps, 1))
  if cfg.schedule == 'warmup_cosine':
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    return optax.warmup_cosine_decay_schedule(
      0.0, lr, warmup_steps=warmup, decay_steps=max(total_steps, warmup + 1)
    )
  raise InputError(f'config.optimizer.schedule must be one of {SCHEDULES}, got {cfg.schedule!r}.')


def create_optimizer(
  cfg: ml_collections.ConfigDict, total_steps: int, steps_per_epoch: int
) -> optax.GradientTransformation:
  """The optimiser `cfg` (= `config.optimizer`) names.

  Raises:
    InputError: unknown optimiser or schedule name.
  """
  lr = learning_rate_schedule(cfg, total_steps, steps_per_epoch)
  return from_schedule(cfg, lr, cfg.weight_decay)


def from_schedule(
  cfg: ml_collections.ConfigDict, lr: optax.Schedule, wd: float
) -> optax.GradientTransformation:
  """The optimiser `cfg.name` (with `cfg`'s momentum, decay, eps) on schedule `lr`, with weight
  decay `wd` (the fine-tuned backbone has its own schedule and decay).

  Raises:
    InputError: unknown optimiser name.
  """
  if cfg.name == 'adam':
    return optax.adamw(lr, weight_decay=wd) if wd else optax.adam(lr)
  if cfg.name == 'rmsprop':
    tx = optax.rmsprop(lr, decay=cfg.rmsprop_decay, eps=cfg.eps)
  elif cfg.name == 'sgd':
    tx = optax.sgd(lr, momentum=cfg.momentum or None)
  else:
    raise InputError(f'config.optimizer.name must be one of {NAMES}, got {cfg.name!r}.')
  return optax.chain(optax.add_decayed_weights(wd), tx) if wd else tx
