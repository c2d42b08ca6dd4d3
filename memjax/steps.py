"""Train state, fold constants and the pure, jitted steps: train, scanned multi-step train, eval.

Every step takes four arguments: the state (or the parameters), a batch, the fold's constants
(`FoldConsts`: thresholds, s_k, feature standardisation) and the frozen extractor weights
(`frozen`: a dict, empty when features come from a store). The dropout key lives in the train
state; each step folds in `state.step`. Nothing fold-specific is closed over, so one compiled
program serves every fold of a run. Metrics are sums, so padding and device splits never skew a
mean.
"""

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import Mesh

from memjax import labels, models, parallel
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


@struct.dataclass
class FoldConsts:
  """A fold's constants, arguments of the jitted steps (not closures: one compile per run).

  Attributes:
    thresholds: [K-1] class thresholds of the fold's training scores.
    values: [K] the s_k of the score aggregation m = sum_k p(k) s_k.
    shift: per feature [D], subtracted from the feature (0 without standardisation).
    scale: per feature [D], multiplied after the shift (1 without standardisation).
  """

  thresholds: jax.Array
  values: jax.Array
  shift: dict
  scale: dict


@dataclasses.dataclass(frozen=True)
class Recipe:
  """Training choices the steps apply (all off reproduces the paper).

  Attributes:
    label_smoothing: share of each target moved to the neighbouring classes (ordinal smoothing).
    ema_decay: decay of the parameter moving average; 0 keeps none.
  """

  label_smoothing: float = 0.0
  ema_decay: float = 0.0


def init_state(
  model: FusionMLP,
  tx: optax.GradientTransformation,
  feature_dims: Mapping[str, int],
  init_key: jax.Array,
  dropout_key: jax.Array,
  *,
  ema: bool = False,
) -> TrainState:
  """Fresh parameters and optimiser state."""
  params = init_params(model, feature_dims, init_key)
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    opt_state=tx.init(params),
    dropout_key=dropout_key,
    ema_params=params if ema else None,
  )


def init_params(model: FusionMLP, feature_dims: Mapping[str, int], key: jax.Array):
  dummy = {n: jnp.zeros((1, d), jnp.float32) for n, d in feature_dims.items()}
  return model.init({'params': key}, dummy, train=False)['params']


def jit_create_state(model, tx, feature_dims, mesh: Mesh, *, ema: bool = False):
  """`init_state` jitted straight into replicated device arrays: `fn(init_key, dropout_key)`."""
  init = functools.partial(init_state, model, tx, feature_dims, ema=ema)
  return jax.jit(init, out_shardings=parallel.replicated(mesh))


def _abstract(fn, mesh: Mesh, *args):
  shapes = jax.eval_shape(fn, *args)
  sharding = parallel.replicated(mesh)
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), shapes)


def abstract_state(model, tx, feature_dims, mesh: Mesh, *, ema: bool = False) -> TrainState:
  """Shapes, dtypes and (replicated) shardings of the state, with nothing allocated."""
  key = jax.random.PRNGKey(0)
  init = functools.partial(init_state, model, tx, feature_dims, ema=ema)
  return _abstract(init, mesh, key, key)


def abstract_params(model, feature_dims, mesh: Mesh):
  """Shapes, dtypes and (replicated) shardings of the parameters alone."""
  init = functools.partial(init_params, model, feature_dims)
  return _abstract(init, mesh, jax.random.PRNGKey(0))


def model_inputs(model: FusionMLP, batch, consts: FoldConsts, frozen, extractors=None) -> dict:
  """The model's input features, standardised by the fold's constants: from the batch, or
  computed from `batch['image']` by the frozen extractors (no gradient flows into them)."""
  if extractors is None:
    raw = {n: batch[n].astype(jnp.float32) for n in model.features}  # a store may hold f16
  else:
    raw = {
      n: jax.lax.stop_gradient(extractors[n].forward(frozen[n], batch['image']))
      for n in model.features
    }
  return {n: (x - consts.shift[n]) * consts.scale[n] for n, x in raw.items()}


def soft_targets(label: jax.Array, num_classes: int, smoothing: float) -> jax.Array:
  """One-hot targets with `smoothing` of the mass split over the neighbouring classes.

  Classes are ordered score bins, so the neighbours of class k are k-1 and k+1 (one of them at
  the ends, which then gets all of `smoothing`).
  """
  one_hot = jax.nn.one_hot(label, num_classes)
  neighbours = jax.nn.one_hot(label - 1, num_classes) + jax.nn.one_hot(label + 1, num_classes)
  neighbours = neighbours / jnp.maximum(neighbours.sum(-1, keepdims=True), 1.0)
  return (1.0 - smoothing) * one_hot + smoothing * neighbours


def _loss_and_class(model: FusionMLP, outputs, batch, consts: FoldConsts, smoothing: float = 0.0):
  """(loss, predicted class) per example; an ensemble's loss is the mean of its members'."""
  members = models.ensemble_size(model) > 1
  if model.head == 'regression':
    loss = jnp.square(outputs - batch['score'])
    score = outputs.mean(0) if members else outputs
    return (loss.mean(0) if members else loss), jnp.searchsorted(
      consts.thresholds, score, side='left'
    )
  label = jnp.broadcast_to(batch['label'], outputs.shape[:-1])
  if smoothing:
    targets = soft_targets(label, model.num_outputs, smoothing)
    loss = optax.softmax_cross_entropy(outputs, targets)
  else:
    loss = optax.softmax_cross_entropy_with_integer_labels(outputs, label)
  if members:
    return loss.mean(0), jnp.argmax(jax.nn.softmax(outputs).mean(0), axis=-1)
  return loss, jnp.argmax(outputs, axis=-1)


def scores_and_probs(model: FusionMLP, outputs, values) -> tuple:
  """The predicted score and class probabilities (None for regression) of model outputs.

  Classification: m = sum_k p(k) s_k over the (member-averaged) probabilities; regression: the
  (member-averaged) score.
  """
  members = models.ensemble_size(model) > 1
  if model.head == 'regression':
    return (outputs.mean(0) if members else outputs), None
  probs = jax.nn.softmax(outputs)
  if members:
    probs = probs.mean(0)
  return labels.aggregate(probs, values), probs


def _ema(decay: float, average, params):
  """One moving-average update: decay * average + (1 - decay) * params."""
  return jax.tree.map(lambda a, p: decay * a + (1.0 - decay) * p, average, params)


def train_step(
  state: TrainState,
  batch,
  consts: FoldConsts,
  frozen,
  *,
  model: FusionMLP,
  tx: optax.GradientTransformation,
  recipe: Recipe = Recipe(),
  extractors=None,
):
  """One optimiser step on a global batch; returns (state, metric sums)."""
  rng = jax.random.fold_in(state.dropout_key, state.step)
  inputs = model_inputs(model, batch, consts, frozen, extractors)

  def loss_fn(params):
    outputs = model.apply({'params': params}, inputs, train=True, rngs={'dropout': rng})
    loss, pred_class = _loss_and_class(model, outputs, batch, consts, recipe.label_smoothing)
    return loss.mean(), (loss, pred_class)

  grads, (loss, pred_class) = jax.grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  ema = state.ema_params
  if ema is not None:
    ema = _ema(recipe.ema_decay, ema, params)
  state = state.replace(step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema)
  metrics = {
    'loss': loss.sum(),
    'correct': jnp.sum(pred_class == batch['label']),
    'count': jnp.asarray(loss.shape[0], jnp.int32),
  }
  return state, metrics


def train_steps(state: TrainState, batches, consts, frozen, **kwargs):
  """`train_step` over the leading axis of `batches` ([T, B, ...]) in one `lax.scan`."""
  step = functools.partial(train_step, **kwargs)
  state, metrics = jax.lax.scan(lambda s, b: step(s, b, consts, frozen), state, batches)
  return state, jax.tree.map(lambda m: m.sum(0), metrics)


def eval_step(params, batch, consts: FoldConsts, frozen, *, model: FusionMLP, extractors=None):
  """Per-example predictions plus masked loss and count sums of one (padded) evaluation batch.

  Accuracy is left to the host, which has the predicted classes and the labels.
  """
  inputs = model_inputs(model, batch, consts, frozen, extractors)
  outputs = model.apply({'params': params}, inputs, train=False)
  loss, pred_class = _loss_and_class(model, outputs, batch, consts)
  score, probs = scores_and_probs(model, outputs, consts.values)
  predictions = {'class': pred_class, 'score': score}
  if probs is not None:
    predictions['probs'] = probs
  mask = batch['mask']
  return predictions, {'loss': jnp.sum(loss * mask), 'count': jnp.sum(mask)}


def jit_train_steps(
  model: FusionMLP,
  tx: optax.GradientTransformation,
  mesh: Mesh,
  *,
  scan: bool = True,
  recipe: Recipe = Recipe(),
  extractors=None,
  compiler_options: dict | None = None,
):
  """Jitted (scanned or single) train step: state replicated and donated, batch sharded.

  Called as `fn(state, batches, consts, frozen)`.
  """
  fn = functools.partial(
    train_steps if scan else train_step, model=model, tx=tx, recipe=recipe, extractors=extractors
  )
  rep = parallel.replicated(mesh)
  batch = parallel.batch_sharding(mesh, batch_axis=1 if scan else 0)
  return jax.jit(
    fn,
    in_shardings=(rep, batch, rep, rep),
    out_shardings=(rep, rep),
    donate_argnums=0,
    compiler_options=compiler_options,
  )


def jit_eval_step(
  model: FusionMLP, mesh: Mesh, *, extractors=None, compiler_options: dict | None = None
):
  """Jitted eval step, called as `fn(params, batch, consts, frozen)`."""
  rep = parallel.replicated(mesh)
  batch = parallel.batch_sharding(mesh)
  return jax.jit(
    functools.partial(eval_step, model=model, extractors=extractors),
    in_shardings=(rep, batch, rep, rep),
    out_shardings=(batch, rep),
    compiler_options=compiler_options,
  )


def host_consts(thresholds, values, shift: dict, scale: dict) -> FoldConsts:
  """A `FoldConsts` of float32 NumPy arrays (replicate it onto the mesh before use)."""
  f32 = lambda x: np.asarray(x, np.float32)
  return FoldConsts(
    thresholds=f32(thresholds),
    values=f32(values),
    shift={n: f32(v) for n, v in shift.items()},
    scale={n: f32(v) for n, v in scale.items()},
  )
