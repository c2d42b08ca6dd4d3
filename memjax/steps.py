"""The pure, jitted steps: train, scanned multi-step train, eval; and what the model reads and
what its outputs mean (its input features, losses, scores).

Every step takes four arguments: the state (or the parameters), a batch, the fold's constants
(`fold_consts.FoldConsts`: thresholds, s_k, feature standardisation) and the frozen extractor
weights (`frozen`: a dict, empty when features come from a store). The dropout key lives in the
train state (`train_state.TrainState`); each step folds in `state.step`. Nothing fold-specific is
closed over, so one compiled program serves every fold of a run. Metrics are sums, so padding and
device splits never skew a mean.

With features computed on the fly, `backbone` (`finetune.Backbone`) holds the extractors. When
it trains some of them, the gradient reaches the backbone from `Recipe.unfreeze_step` on (before
it, only the head's backward pass runs). Training images may be augmented on the device
(`Recipe.augment`), with a key folded from the step's dropout key: still a pure function of
(seed, fold, step).
"""

import dataclasses
import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from memjax import augment as image_augment
from memjax import finetune, labels, models, parallel
from memjax.fold_consts import FoldConsts
from memjax.models import FusionMLP
from memjax.train_state import TrainState, split_params


@dataclasses.dataclass(frozen=True)
class Recipe:
  """Training choices the steps apply (all off reproduces the paper).

  Attributes:
    label_smoothing: share of each target moved to the neighbouring classes (ordinal smoothing).
    ema_decay: decay of the parameter moving average; 0 keeps none.
    augment: on-device augmentation of training images (None: none; on-the-fly features only).
    unfreeze_step: fine-tuning: the first step whose gradient reaches the backbone.
  """

  label_smoothing: float = 0.0
  ema_decay: float = 0.0
  augment: image_augment.Augment | None = None
  unfreeze_step: int = 0


def model_inputs(
  model: FusionMLP,
  batch,
  consts: FoldConsts,
  frozen,
  backbone: finetune.Backbone | None = None,
  trained=None,
  images=None,
) -> dict:
  """The model's input features (`raw_features`), standardised by the fold's constants."""
  return consts.standardize(raw_features(model, batch, frozen, backbone, trained, images))


def raw_features(model: FusionMLP, batch, frozen, backbone=None, trained=None, images=None):
  """Float32 features by name: from the batch, or computed from `images` (default
  `batch['image']`; one array for every extractor, or feature name -> its extractor's images) by
  the extractors. Gradients flow into the extractors only through `trained` (their trained
  parts; None: all frozen)."""
  if backbone is None:
    raw = {n: batch[n].astype(jnp.float32) for n in model.features}  # a store may hold f16
  else:
    images = batch['image'] if images is None else images
    raw = {}
    for n in model.features:
      x_in = images[n] if isinstance(images, Mapping) else images
      x = backbone.extractors[n].forward(backbone.params_of(n, trained, frozen), x_in)
      x = x.astype(jnp.float32)
      raw[n] = x if trained is not None and n in backbone.plans else jax.lax.stop_gradient(x)
  return raw


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
  backbone: finetune.Backbone | None = None,
):
  """One optimiser step on a global batch; returns (state, metric sums)."""
  rng = jax.random.fold_in(state.dropout_key, state.step)
  images = None
  if backbone is not None and recipe.augment is not None:
    images = image_augment.augment(jax.random.fold_in(rng, 1), batch['image'], recipe.augment)
    # Materialise the augmented batch: otherwise XLA fuses the crop into the backbone's first
    # convolution and recomputes it at every use (docs/performance.md).
    images = jax.lax.optimization_barrier(images)
  inputs = None  # features of a frozen backbone (or a store) are computed once, outside the grad
  if backbone is None or not backbone.trained:
    inputs = model_inputs(model, batch, consts, frozen, backbone, images=images)
  split = functools.partial(split_params, backbone=backbone)

  def loss_fn(params):
    head, trained = split(params)
    x = (
      inputs
      if trained is None
      else model_inputs(model, batch, consts, frozen, backbone, trained, images)
    )
    outputs = model.apply({'params': head}, x, train=True, rngs={'dropout': rng})
    loss, pred_class = _loss_and_class(model, outputs, batch, consts, recipe.label_smoothing)
    return loss.mean(), (loss, pred_class)

  grad_fn = jax.grad(loss_fn, has_aux=True)
  if backbone is not None and backbone.trained and recipe.unfreeze_step > 0:
    grad_fn = functools.partial(
      _head_until_unfrozen, grad_fn, loss_fn, recipe.unfreeze_step, state.step
    )
  grads, (loss, pred_class) = grad_fn(state.params)
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


def _head_until_unfrozen(grad_fn, loss_fn, unfreeze_step: int, step, params):
  """`grad_fn(params)` from `unfreeze_step` on; before it, the head's gradient alone (zeros for
  the backbone) and the backbone's backward pass is not run (`lax.cond` runs one branch)."""

  def head_only(params):
    def head_loss(head):
      return loss_fn({'head': head, 'backbone': params['backbone']})

    head_grads, aux = jax.grad(head_loss, has_aux=True)(params['head'])
    return {'head': head_grads, 'backbone': jax.tree.map(jnp.zeros_like, params['backbone'])}, aux

  return jax.lax.cond(step >= unfreeze_step, grad_fn, head_only, params)


def train_steps(state: TrainState, batches, consts, frozen, table=None, **kwargs):
  """`train_step` over the leading axis of `batches` ([T, B, ...]) in one `lax.scan`. With
  `table` (a fold's row arrays on the device, name -> [N, ...]), `batches` are [T, B] row
  numbers, and each step gathers its batch from the table."""
  step = functools.partial(train_step, **kwargs)

  def body(state, batch):
    if table is not None:
      batch = jax.tree.map(lambda a: a[batch], table)
    return step(state, batch, consts, frozen)

  state, metrics = jax.lax.scan(body, state, batches)
  return state, jax.tree.map(lambda m: m.sum(0), metrics)


def eval_step(params, batch, consts: FoldConsts, frozen, *, model: FusionMLP, backbone=None):
  """Per-example predictions plus masked loss and count sums of one (padded) evaluation batch.

  Accuracy is left to the host, which has the predicted classes and the labels.
  """
  head, trained = split_params(params, backbone)
  inputs = model_inputs(model, batch, consts, frozen, backbone, trained)
  outputs = model.apply({'params': head}, inputs, train=False)
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
  on_table: bool = False,
  recipe: Recipe = Recipe(),
  backbone: finetune.Backbone | None = None,
  compiler_options: dict | None = None,
):
  """Jitted (scanned or single) train step: state replicated and donated, batch sharded.

  Called as `fn(state, batches, consts, frozen)`; with `on_table` (scanned), as
  `fn(state, rows, consts, frozen, table)`: rows [T, B] sharded, the table replicated.
  """
  body = train_steps if scan or on_table else train_step
  fn = functools.partial(body, model=model, tx=tx, recipe=recipe, backbone=backbone)
  rep = parallel.replicated(mesh)
  batch = parallel.batch_sharding(mesh, batch_axis=1 if scan or on_table else 0)
  return jax.jit(
    fn,
    in_shardings=(rep, batch, rep, rep) + ((rep,) if on_table else ()),
    out_shardings=(rep, rep),
    donate_argnums=0,
    compiler_options=compiler_options,
  )


def jit_eval_step(
  model: FusionMLP, mesh: Mesh, *, backbone=None, compiler_options: dict | None = None
):
  """Jitted eval step, called as `fn(params, batch, consts, frozen)`."""
  rep = parallel.replicated(mesh)
  batch = parallel.batch_sharding(mesh)
  return jax.jit(
    functools.partial(eval_step, model=model, backbone=backbone),
    in_shardings=(rep, batch, rep, rep),
    out_shardings=(batch, rep),
    compiler_options=compiler_options,
  )
