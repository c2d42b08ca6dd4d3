"""The train state a fold carries from step to step: its creation, and its shapes without
allocating anything (for restoring checkpoints into, on any device count).

With a backbone that fine-tuning trains (`finetune.Backbone`), the parameters are
`{'head': MLP, 'backbone': {feature: trained part}}`; otherwise they are the MLP's alone.
"""

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.sharding import Mesh

from memjax import finetune, parallel
from memjax.models import FusionMLP


@struct.dataclass
class TrainState:
  """What a fold's training carries from step to step.

  Attributes:
    step: optimiser steps taken.
    params: the trained parameters.
    opt_state: the optimiser's state.
    dropout_key: the fold's dropout key; step t uses `fold_in(dropout_key, t)`.
    ema_params: an exponential moving average of `params` (None when `ema_decay` is 0).
  """

  step: jax.Array
  params: Any
  opt_state: Any
  dropout_key: jax.Array
  ema_params: Any = None

  @property
  def eval_params(self):
    """The parameters evaluation uses: the moving average when there is one."""
    return self.params if self.ema_params is None else self.ema_params


def init_state(
  model: FusionMLP,
  tx: optax.GradientTransformation,
  feature_dims: Mapping[str, int],
  init_key: jax.Array,
  dropout_key: jax.Array,
  weights=None,
  *,
  ema: bool = False,
  backbone: finetune.Backbone | None = None,
) -> TrainState:
  """Fresh parameters and optimiser state (`weights`: the extractors' pretrained parameters,
  which the trained backbone parts start from)."""
  params = init_params(model, feature_dims, init_key, weights, backbone=backbone)
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    opt_state=tx.init(params),
    dropout_key=dropout_key,
    ema_params=params if ema else None,
  )


def init_params(
  model: FusionMLP,
  feature_dims: Mapping[str, int],
  key: jax.Array,
  weights=None,
  *,
  backbone: finetune.Backbone | None = None,
):
  """The MLP's fresh parameters; with a trained backbone `{'head': ..., 'backbone': ...}`."""
  dummy = {n: jnp.zeros((1, d), jnp.float32) for n, d in feature_dims.items()}
  head = model.init({'params': key}, dummy, train=False)['params']
  if backbone is None or not backbone.trained:
    return head
  return {'head': head, 'backbone': backbone.init(jax.random.fold_in(key, 1), weights)}


def split_params(params, backbone: finetune.Backbone | None) -> tuple:
  """(the MLP's parameters, the trained backbone parts or None)."""
  if backbone is None or not backbone.trained:
    return params, None
  return params['head'], params['backbone']


def jit_create_state(
  model, tx, feature_dims, mesh: Mesh, *, ema: bool = False, backbone=None
) -> Callable:
  """`init_state` jitted straight into replicated device arrays:
  `fn(init_key, dropout_key, weights)` (`weights`: `backbone.weights`, or None)."""
  init = functools.partial(init_state, model, tx, feature_dims, ema=ema, backbone=backbone)
  return jax.jit(init, out_shardings=parallel.replicated(mesh))


def _weights(backbone, names):
  if backbone is None or not backbone.trained:
    return None
  return backbone.weights(names)


def _abstract(fn, mesh: Mesh, *args):
  shapes = jax.eval_shape(fn, *args)
  sharding = parallel.replicated(mesh)
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), shapes)


def abstract_state(
  model, tx, feature_dims, mesh: Mesh, *, ema: bool = False, backbone=None
) -> TrainState:
  """Shapes, dtypes and (replicated) shardings of the state, with nothing allocated."""
  key = jax.random.PRNGKey(0)
  init = functools.partial(init_state, model, tx, feature_dims, ema=ema, backbone=backbone)
  return _abstract(init, mesh, key, key, _weights(backbone, feature_dims))


def abstract_params(model, feature_dims, mesh: Mesh, *, backbone=None):
  """Shapes, dtypes and (replicated) shardings of the parameters alone."""
  init = functools.partial(init_params, model, feature_dims, backbone=backbone)
  return _abstract(init, mesh, jax.random.PRNGKey(0), _weights(backbone, feature_dims))
