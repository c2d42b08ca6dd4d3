"""What a run builds once from its config and hands to training, evaluation and prediction.

`build_parts` turns the config into objects: the fusion model, the backbone (the on-the-fly
extractors and what fine-tuning trains of them; None when the features come from a store), the
feature widths, what each of the run's checkpoints records and must match (`expected`), the
shapes the parameters are restored into, the frozen extractor weights on the devices and the
jitted eval step with its batch size. Nothing below rebuilds them from the config.
"""

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import ml_collections
from jax.sharding import Mesh, NamedSharding

from memjax import checkpoint_meta, checkpointing, finetune, models, parallel, steps, train_state
from memjax.features.extractor import Extractor
from memjax.runtime import xla_options


@dataclasses.dataclass(frozen=True)
class RunParts:
  """A run's model and what goes with it, built once.

  Attributes:
    model: the fusion MLP (or its ensemble).
    backbone: the on-the-fly extractors and their fine-tuning plans; None: features from a store.
    feature_dims: feature name -> width of the model's input.
    expected: `checkpoint_meta.run_meta` of the config: what every checkpoint of the run records.
    abstract_params: shapes, dtypes and replicated shardings of the evaluation parameters.
    frozen: the extractors' fixed weights on the devices (the steps' `frozen`; empty with a
      store): all of them, or what fine-tuning leaves untrained.
    eval: the jitted eval step, `(params, batch, consts, frozen) -> (predictions, metric sums)`.
    eval_batch_size: the global batch size it runs on (`config.eval_batch_size`).
    eval_share: the slice of every evaluation batch that this process reads.
    eval_sharding: how an evaluation batch is laid out on the mesh (split along its examples).
    mesh: the device mesh everything above is laid out on.
  """

  model: models.FusionMLP
  backbone: finetune.Backbone | None
  feature_dims: Mapping[str, int]
  expected: dict
  abstract_params: Any
  frozen: dict
  eval: Callable
  eval_batch_size: int
  eval_share: slice
  eval_sharding: NamedSharding
  mesh: Mesh

  def restore(self, fold_dir: str, which: str) -> tuple:
    """(params, meta, step) of checkpoint `which` of the fold in `fold_dir`
    (`checkpointing.restore_params`)."""
    return checkpointing.restore_params(fold_dir, which, self.abstract_params, self.expected)


def build_parts(
  config: ml_collections.ConfigDict,
  extractors: Mapping[str, Extractor] | None,
  feature_dims: Mapping[str, int],
  mesh: Mesh,
) -> RunParts:
  """The parts of a run of `config` whose features come from `extractors` (computed on the fly)
  or, when None, from a store, with widths `feature_dims`.

  Raises:
    InputError: the model or the fine-tuning the config asks for cannot be built.
  """
  expected = checkpoint_meta.run_meta(config, feature_dims)
  backbone = finetune.backbone(config, extractors)
  frozen = {} if backbone is None else backbone.frozen_weights(config.features)
  model = models.create_model(config)
  options = xla_options.compiler_options('eval', config.cpu_library_fusions)
  return RunParts(
    model=model,
    backbone=backbone,
    feature_dims=dict(feature_dims),
    expected=expected,
    eval=steps.jit_eval_step(model, mesh, backbone=backbone, compiler_options=options),
    abstract_params=train_state.abstract_params(model, feature_dims, mesh, backbone=backbone),
    frozen=parallel.replicate(frozen, mesh),
    eval_batch_size=config.eval_batch_size,
    eval_share=parallel.process_share(config.eval_batch_size),
    eval_sharding=parallel.batch_sharding(mesh, 0),
    mesh=mesh,
  )
