"""A run's jitted training programs, built once and shared by its folds.

The fold's constants, its train state and the frozen extractor weights are arguments, so one
compilation serves every fold. The optimiser's schedules depend on the steps per epoch, so a run
whose folds differ in it (and whose schedules or fine-tuning count in epochs) builds one set per
value.
"""

import dataclasses
import functools
from collections.abc import Callable

import ml_collections

from memjax import augment, finetune, steps, train_state
from memjax.run_parts import RunParts
from memjax.runtime import xla_options


@dataclasses.dataclass(frozen=True)
class Programs:
  """The jitted functions that train a fold.

  Attributes:
    init: `(init_key, dropout_key, weights) -> TrainState`, replicated (`weights`: the
      extractors' pretrained parameters when fine-tuning trains them, else None).
    train: `(state, batches [T, B, ...], consts, frozen) -> (state, metric sums)`.
    train_on_table: `(state, rows [T, B], consts, frozen, table) -> (state, metric sums)`, the
      batches gathered from a device-resident table (`device_table`).
    abstract_state: the train state's shapes and shardings, to resume into.
  """

  init: Callable
  train: Callable
  train_on_table: Callable
  abstract_state: train_state.TrainState


def build_programs(
  config: ml_collections.ConfigDict, parts: RunParts, steps_per_epoch: int
) -> Programs:
  """The training programs of `config` for folds of `steps_per_epoch` steps per epoch."""
  unfreeze_step = finetune.unfreeze_step(config, steps_per_epoch)
  tx = finetune.create_optimizer(config, steps_per_epoch * config.num_epochs, steps_per_epoch)
  recipe = steps.Recipe(
    label_smoothing=config.label_smoothing,
    ema_decay=config.ema_decay,
    augment=augment.spec_of(config),
    unfreeze_step=unfreeze_step,
  )
  options = xla_options.compiler_options('train', config.cpu_library_fusions)
  ema = config.ema_decay > 0
  model, mesh, dims, backbone = parts.model, parts.mesh, parts.feature_dims, parts.backbone
  train = functools.partial(
    steps.jit_train_steps,
    model,
    tx,
    mesh,
    recipe=recipe,
    backbone=backbone,
    compiler_options=options,
  )
  return Programs(  # jax.jit compiles on first call: the path a fold does not take costs nothing
    train=train(),
    train_on_table=train(on_table=True),
    init=train_state.jit_create_state(model, tx, dims, mesh, ema=ema, backbone=backbone),
    abstract_state=train_state.abstract_state(model, tx, dims, mesh, ema=ema, backbone=backbone),
  )
