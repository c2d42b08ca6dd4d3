"""Fine-tuning the on-the-fly extractors: which of their parameters train, LoRA adapters, optimiser.

`config.finetune.mode` chooses what moves (features computed on the fly only):

| mode | trained backbone parameters |
| --- | --- |
| `none` | nothing: the extractors are frozen (the default; the paper's setting) |
| `last` | the last `last_blocks` blocks and every parameter the forward reads after them |
| `all` | every parameter the forward reads |
| `lora` | adapters W + (alpha / r) A B on the blocks' 2-D kernels (last `last_blocks`; 0: all) |

The trained parameters live in `params['backbone'][feature]`, beside the fusion MLP's
`params['head']`; everything else stays in the steps' `frozen` argument, so it gets no gradient and
no optimiser state. Which parameters come "after" a block, and which the forward never reads (e.g.
EfficientNet's ImageNet classifier), is read off the forward's jaxpr, so the rule holds for any
extractor whose blocks are named `block_<i>` (EfficientNet-Lite's MBConv blocks, the ViTs'
transformer blocks). Batch norm is folded into the CNN convolutions at load time, so its
statistics never move. LoRA's A is drawn uniform in +-1/sqrt(in) and B is zero: training starts
from the frozen network exactly.

The backbone has its own learning rate and weight decay (`optax.multi_transform`), a linear
warm-up, and can stay frozen for the first `unfreeze_epoch` epochs (the head trains alone; the
steps then skip the backbone's backward pass).
"""

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from memjax import optimizers
from memjax.errors import InputError
from memjax.features.extractor import Extractor

MODES = ('none', 'last', 'all', 'lora')
_BLOCK = re.compile(r'block_(\d+)')
_LORA_A, _LORA_B = 'lora_a', 'lora_b'


@dataclasses.dataclass(frozen=True)
class Plan:
  """What fine-tuning trains of one extractor.

  Attributes:
    mode: 'last', 'all' or 'lora'.
    keys: top-level parameter keys trained as they are ('last', 'all').
    lora_paths: paths (tuples of keys) of the 2-D kernels that get adapters ('lora').
    rank: LoRA rank r.
    alpha: LoRA scale numerator (the update is alpha / r * A B).
  """

  mode: str
  keys: tuple[str, ...] = ()
  lora_paths: tuple[tuple[str, ...], ...] = ()
  rank: int = 0
  alpha: float = 0.0

  def init(self, key: jax.Array, params: Any) -> dict:
    """The trained parameters at the start: copies of `keys`, or fresh adapters (jittable)."""
    if self.mode != 'lora':
      return {k: jax.tree.map(jnp.array, params[k]) for k in self.keys}
    adapters: dict = {}
    for i, path in enumerate(self.lora_paths):
      kernel = _at(params, path)
      fan_in, fan_out = kernel.shape
      bound = 1.0 / math.sqrt(fan_in)
      a = jax.random.uniform(
        jax.random.fold_in(key, i), (fan_in, self.rank), kernel.dtype, -bound, bound
      )
      _set(adapters, path, {_LORA_A: a, _LORA_B: jnp.zeros((self.rank, fan_out), kernel.dtype)})
    return adapters

  def frozen(self, params: Any) -> dict:
    """The part of the extractor's parameters that stays fixed (the steps' `frozen`)."""
    return {k: v for k, v in params.items() if k not in self.keys}

  def merge(self, trained: dict, frozen: dict) -> dict:
    """The extractor's full parameters from the trained and the frozen parts (jittable)."""
    if self.mode != 'lora':
      return {**frozen, **trained}
    scale = self.alpha / self.rank
    merged = frozen
    for path in self.lora_paths:
      adapter = _at(trained, path)
      kernel = _at(frozen, path)
      delta = (adapter[_LORA_A] @ adapter[_LORA_B]) * scale
      merged = _replaced(merged, path, kernel + delta.astype(kernel.dtype))
    return merged

  def num_params(self, params: Any) -> int:
    """Trained parameter count (LoRA: r * (in + out) per adapted kernel)."""
    shapes = jax.eval_shape(lambda p: self.init(jax.random.PRNGKey(0), p), params)
    return sum(math.prod(x.shape) for x in jax.tree.leaves(shapes))


def _at(tree, path):
  for k in path:
    tree = tree[k]
  return tree


def _set(tree: dict, path, value) -> None:
  for k in path[:-1]:
    tree = tree.setdefault(k, {})
  tree[path[-1]] = value


def _replaced(tree: dict, path, value) -> dict:
  """A copy of `tree` (copying only the dicts along `path`) with `value` at `path`."""
  if len(path) == 1:
    return {**tree, path[0]: value}
  return {**tree, path[0]: _replaced(tree[path[0]], path[1:], value)}


def use_order(extractor: Extractor) -> dict[str, int]:
  """Top-level parameter key -> position of the first equation of the forward that needs it.

  Keys the features do not depend on (dead code, e.g. a classifier whose logits are dropped) are
  left out. Read from the jaxpr of `extractor.forward` on one abstract image.
  """
  flat, treedef = jax.tree_util.tree_flatten_with_path(extractor.params)
  image = jax.ShapeDtypeStruct((1, extractor.image_size, extractor.image_size, 3), jnp.uint8)
  abstract = [jax.ShapeDtypeStruct(leaf.shape, leaf.dtype) for _, leaf in flat]

  def forward(image, *leaves):
    return extractor.forward(jax.tree.unflatten(treedef, leaves), image)

  jaxpr = jax.make_jaxpr(forward)(image, *abstract).jaxpr
  needed = {id(v) for v in jaxpr.outvars}
  first = {}
  for index in range(len(jaxpr.eqns) - 1, -1, -1):  # backwards: dead equations are skipped
    eqn = jaxpr.eqns[index]
    if not any(id(v) in needed for v in eqn.outvars):
      continue
    for v in eqn.invars:
      needed.add(id(v))
      first[id(v)] = index
  order: dict[str, int] = {}
  for (path, _), var in zip(flat, jaxpr.invars[1:], strict=True):
    if id(var) in first:
      top = path[0].key
      order[top] = min(order.get(top, first[id(var)]), first[id(var)])
  return order


def blocks(params: Mapping) -> list[str]:
  """The `block_<i>` keys of an extractor's parameters, in block order."""
  found = [(int(m.group(1)), k) for k in params if (m := _BLOCK.fullmatch(k))]
  return [k for _, k in sorted(found)]


def plan(extractor: Extractor, cfg: ml_collections.ConfigDict, name: str) -> Plan | None:
  """What `cfg` (= `config.finetune`) trains of the extractor of feature `name`; None: frozen.

  Raises:
    InputError: an unknown mode, an extractor without parameters or blocks the mode needs,
      `last_blocks` out of range, or a LoRA rank below 1.
  """
  if cfg.mode not in MODES:
    raise InputError(f'config.finetune.mode must be one of {MODES}, got {cfg.mode!r}.')
  if cfg.mode == 'none':
    return None
  where = f'config.finetune.mode={cfg.mode!r} for feature {name!r} ({extractor.name})'
  if not jax.tree.leaves(extractor.params):
    raise InputError(f'{where}: this extractor has no parameters to train.')
  order = use_order(extractor)
  if cfg.mode == 'all':
    return Plan('all', keys=tuple(sorted(order, key=order.get)))
  found = [b for b in blocks(extractor.params) if b in order]
  n = cfg.last_blocks
  if not found:
    raise InputError(f'{where}: the extractor has no blocks (block_<i>); use mode "all".')
  if cfg.mode == 'last' and not 1 <= n <= len(found):
    raise InputError(
      f'config.finetune.last_blocks must be in 1..{len(found)} (the blocks of {extractor.name}) '
      f'for mode "last", got {n}.'
    )
  if cfg.mode == 'last':
    start = order[found[-n]]
    return Plan('last', keys=tuple(sorted((k for k in order if order[k] >= start), key=order.get)))
  if not 0 <= n <= len(found):
    raise InputError(
      f'config.finetune.last_blocks must be in 0..{len(found)} for mode "lora" (0: all blocks), '
      f'got {n}.'
    )
  if cfg.lora_rank < 1:
    raise InputError(f'config.finetune.lora_rank must be >= 1, got {cfg.lora_rank}.')
  chosen = found[-n:] if n else found
  paths = tuple(
    tuple(p.key for p in path)
    for path, leaf in jax.tree_util.tree_flatten_with_path(extractor.params)[0]
    if path[0].key in chosen and path[-1].key == 'kernel' and leaf.ndim == 2
  )
  if not paths:
    raise InputError(f'{where}: the chosen blocks have no 2-D kernels to adapt.')
  alpha = float(cfg.lora_alpha or cfg.lora_rank)  # None: alpha = r, a scale of 1
  return Plan('lora', lora_paths=paths, rank=cfg.lora_rank, alpha=alpha)


def plans(config: ml_collections.ConfigDict, extractors: Mapping | None) -> dict[str, Plan]:
  """Feature name -> `Plan` for the trained extractors of `config.features` (empty: all frozen).

  Raises:
    InputError: fine-tuning asked for without on-the-fly features, or as `plan`.
  """
  if config.finetune.mode == 'none':
    return {}
  if extractors is None:
    raise InputError(
      f'config.finetune.mode={config.finetune.mode!r} trains the extractors, which needs '
      'features computed from the images: set config.data.on_the_fly=True.'
    )
  return {n: plan(extractors[n], config.finetune, n) for n in config.features}


def describe(config: ml_collections.ConfigDict) -> dict | None:
  """What a checkpoint's parameters depend on of the fine-tuning: the mode, its blocks or rank,
  and each fine-tuned extractor's identity (None when the extractors are frozen)."""
  cfg = config.finetune
  if cfg.mode == 'none':
    return None
  backbones = {}
  for n in config.features:
    spec = config.extractors[n]
    backbones[n] = {
      'kind': spec.kind,
      'variant': spec.get('variant'),
      'output': spec.get('output'),
      'pool_depths': list(spec.get('pool_depths', ())),
      'flip': bool(spec.get('flip', False)),
    }
  return {
    'mode': cfg.mode,
    'last_blocks': cfg.last_blocks if cfg.mode != 'all' else None,
    'lora_rank': cfg.lora_rank if cfg.mode == 'lora' else None,
    'lora_alpha': cfg.lora_alpha if cfg.mode == 'lora' else None,
    'backbones': backbones,
  }


def describe_training(config: ml_collections.ConfigDict) -> dict | None:
  """The fine-tuning fields resuming must agree with (None when the extractors are frozen)."""
  cfg = config.finetune
  if cfg.mode == 'none':
    return None
  fields = ('learning_rate', 'weight_decay', 'unfreeze_epoch', 'warmup_epochs')
  return {k: cfg[k] for k in fields}


def unfreeze_step(config: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
  """The first step that trains the backbone."""
  return int(round(config.finetune.unfreeze_epoch * steps_per_epoch))


def backbone_schedule(
  config: ml_collections.ConfigDict, total_steps: int, steps_per_epoch: int
) -> optax.Schedule:
  """Zero until `unfreeze_epoch`, a linear warm-up over `warmup_epochs`, then the backbone's
  learning rate, constant or (when the head's schedule decays) cosine-decayed to 0 at the end."""
  cfg = config.finetune
  start = unfreeze_step(config, steps_per_epoch)
  warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
  rest = max(total_steps - start - warmup, 1)
  if config.optimizer.schedule == 'constant':
    after = optax.constant_schedule(cfg.learning_rate)
  else:
    after = optax.cosine_decay_schedule(cfg.learning_rate, decay_steps=rest)
  parts = [optax.constant_schedule(0.0)]
  boundaries = [start]
  if warmup:
    parts.append(optax.linear_schedule(0.0, cfg.learning_rate, warmup))
    boundaries.append(start + warmup)
  return optax.join_schedules([*parts, after], boundaries)


def create_optimizer(
  config: ml_collections.ConfigDict, total_steps: int, steps_per_epoch: int
) -> optax.GradientTransformation:
  """The head's optimiser (`config.optimizer`), and with fine-tuning `multi_transform` of it and
  the backbone's (same optimiser, `config.finetune.learning_rate` / `weight_decay`)."""
  schedule = None
  if config.finetune.mode != 'none':
    schedule = backbone_schedule(config, total_steps, steps_per_epoch)
  head = optimizers.create_optimizer(config.optimizer, total_steps, steps_per_epoch)
  if schedule is None:
    return head
  backbone = optimizers.from_schedule(config.optimizer, schedule, config.finetune.weight_decay)

  def labels(params):
    return {part: jax.tree.map(lambda _: part, params[part]) for part in params}  # noqa: B023

  return optax.multi_transform({'head': head, 'backbone': backbone}, labels)


@dataclasses.dataclass(frozen=True)
class Backbone:
  """The on-the-fly extractors of a run and what fine-tuning trains of them.

  Attributes:
    extractors: feature name -> `Extractor`.
    plans: feature name -> `Plan` of each trained extractor (empty: all frozen).
  """

  extractors: Mapping[str, Extractor]
  plans: Mapping[str, Plan] = dataclasses.field(default_factory=dict)

  @property
  def trained(self) -> bool:
    return bool(self.plans)

  def weights(self, names) -> dict:
    """Feature name -> the extractor's full (pretrained) parameters."""
    return {n: self.extractors[n].params for n in names}

  def frozen_weights(self, names) -> dict:
    """Feature name -> the parameters that stay fixed (the steps' `frozen` argument)."""
    return {
      n: self.plans[n].frozen(e) if n in self.plans else e for n, e in self.weights(names).items()
    }

  def init(self, key: jax.Array, weights: Mapping) -> dict:
    """Feature name -> initial trained parameters (jittable; `weights` as `self.weights`)."""
    return {
      n: p.init(jax.random.fold_in(key, i), weights[n])
      for i, (n, p) in enumerate(sorted(self.plans.items()))
    }

  def params_of(self, name: str, trained: Mapping | None, frozen: Mapping):
    """The full parameters feature `name`'s extractor runs with."""
    if name not in self.plans:
      return frozen[name]
    return self.plans[name].merge(trained[name], frozen[name])


def backbone(config: ml_collections.ConfigDict, extractors: Mapping | None) -> Backbone | None:
  """The run's `Backbone` (None when features come from a store)."""
  if extractors is None:
    plans(config, extractors)  # refuses fine-tuning without on-the-fly features
    return None
  return Backbone(extractors=extractors, plans=plans(config, extractors))
