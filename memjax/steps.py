"""Train state and the pure, jitted steps: train, scanned multi-step train, and eval.

`consts` carries the fold's constants into the steps: `key` (the fold's dropout key; each step
folds in `state.step`), `thresholds` [K-1] and `values` [K] (the s_k of the score aggregation).
Metrics are sums, so padding and device splits never skew a mean.
"""

import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import optax
from flax.training import train_state
from jax.sharding import Mesh

from memjax import labels, parallel
from memjax.models import FusionMLP
from memjax.runtime import xla_options

TrainState = train_state.TrainState


def init_state(
  model: FusionMLP,
  tx: optax.GradientTransformation,
  feature_dims: Mapping[str, int],
  key: jax.Array,
) -> TrainState:
  """Fresh parameters and optimiser state."""
  dummy = {n: jnp.zeros((1, d), jnp.float32) for n, d in feature_dims.items()}
  params = model.init({'params': key}, dummy, train=False)['params']
  return TrainState.create(apply_fn=model.apply, params=params, tx=tx)


def create_state(model, tx, feature_dims, key, mesh: Mesh) -> TrainState:
  """`init_state`, jitted straight into replicated device arrays."""
  init = functools.partial(init_state, model, tx, feature_dims)
  return jax.jit(init, out_shardings=parallel.replicated(mesh))(key)


def abstract_state(model, tx, feature_dims, mesh: Mesh):
  """Shapes, dtypes and (replicated) shardings of the state, with nothing allocated."""
  init = functools.partial(init_state, model, tx, feature_dims)
  shapes = jax.eval_shape(init, jax.random.PRNGKey(0))
  sharding = parallel.replicated(mesh)
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), shapes)


def model_inputs(model: FusionMLP, batch, consts, extractors=None) -> dict:
  """The model's input features: from the batch, or computed from `batch['image']` by the frozen
  extractors (on the fly; no gradient flows into them)."""
  if extractors is None:
    return {n: batch[n].astype(jnp.float32) for n in model.features}  # a store may hold f16
  return {
    n: jax.lax.stop_gradient(extractors[n].forward(consts['frozen'][n], batch['image']))
    for n in model.features
  }


def _per_example(model: FusionMLP, outputs, batch, consts):
  """(loss, predicted score, predicted class) per example."""
  if model.head == 'regression':
    score = outputs
    loss = jnp.square(score - batch['score'])
    pred_class = jnp.searchsorted(consts['thresholds'], score, side='left')
  else:
    loss = optax.softmax_cross_entropy_with_integer_labels(outputs, batch['label'])
    score = labels.aggregate(jax.nn.softmax(outputs), consts['values'])
    pred_class = jnp.argmax(outputs, axis=-1)
  return loss, score, pred_class


def train_step(state: TrainState, batch, consts, *, model: FusionMLP, extractors=None):
  """One optimiser step on a global batch; returns (state, metric sums)."""
  rng = jax.random.fold_in(consts['key'], state.step)
  inputs = model_inputs(model, batch, consts, extractors)

  def loss_fn(params):
    outputs = model.apply({'params': params}, inputs, train=True, rngs={'dropout': rng})
    loss, _, pred_class = _per_example(model, outputs, batch, consts)
    return loss.mean(), (loss, pred_class)

  grads, (loss, pred_class) = jax.grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads)
  metrics = {
    'loss': loss.sum(),
    'correct': jnp.sum(pred_class == batch['label']),
    'count': jnp.asarray(loss.shape[0], jnp.int32),
  }
  return state, metrics


def train_steps(state: TrainState, batches, consts, *, model: FusionMLP, extractors=None):
  """`train_step` over the leading axis of `batches` ([T, B, ...]) in one `lax.scan`."""
  step = functools.partial(train_step, model=model, extractors=extractors)
  state, metrics = jax.lax.scan(lambda s, b: step(s, b, consts), state, batches)
  return state, jax.tree.map(lambda m: m.sum(0), metrics)


def eval_step(params, batch, consts, *, model: FusionMLP, extractors=None):
  """Per-example predictions plus masked metric sums of one (padded) evaluation batch."""
  inputs = model_inputs(model, batch, consts, extractors)
  outputs = model.apply({'params': params}, inputs, train=False)
  loss, score, pred_class = _per_example(model, outputs, batch, consts)
  mask = batch['mask']
  predictions = {'score': score, 'class': pred_class}
  if model.head == 'classification':
    predictions['probs'] = jax.nn.softmax(outputs)
  sums = {
    'loss': jnp.sum(loss * mask),
    'correct': jnp.sum((pred_class == batch['label']) * mask),
    'count': jnp.sum(mask),
  }
  return predictions, sums


def jit_train_steps(model: FusionMLP, mesh: Mesh, *, scan: bool = True, extractors=None):
  """Jitted (scanned or single) train step: state replicated and donated, batch sharded."""
  fn = functools.partial(train_steps if scan else train_step, model=model, extractors=extractors)
  rep = parallel.replicated(mesh)
  batch = parallel.batch_sharding(mesh, batch_axis=1 if scan else 0)
  return jax.jit(
    fn,
    in_shardings=(rep, batch, rep),
    out_shardings=(rep, rep),
    donate_argnums=0,
    compiler_options=xla_options.compiler_options(),
  )


def jit_eval_step(model: FusionMLP, mesh: Mesh, extractors=None):
  rep = parallel.replicated(mesh)
  batch = parallel.batch_sharding(mesh)
  return jax.jit(
    functools.partial(eval_step, model=model, extractors=extractors),
    in_shardings=(rep, batch, rep),
    out_shardings=(batch, rep),
    compiler_options=xla_options.compiler_options(),
  )
