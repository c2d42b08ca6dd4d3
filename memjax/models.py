"""The fusion MLP of the paper (Fig. 2): one Dense branch per feature, concatenation, more Dense
layers, then K class logits (classification) or a sigmoid score (regression baseline)."""

from collections.abc import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from memjax.errors import InputError

ACTIVATIONS = {'relu': nn.relu, 'tanh': jnp.tanh}
HEADS = ('classification', 'regression')


class FusionMLP(nn.Module):
  """Branch per feature -> concat -> hidden layers -> head.

  Attributes:
    features: names of the input features, in order; `inputs[name]` is [batch, dim].
    branch_units: per feature, the widths of its Dense layers (may be empty: the raw feature).
    hidden_units: widths of the Dense layers after the concatenation.
    num_outputs: K logits for `classification`; ignored (1 output) for `regression`.
    dropout_rate: dropout after every hidden Dense layer, in training only.
    activation: `relu` or `tanh`.
    head: `classification` returns logits [batch, K]; `regression` a score in (0, 1) [batch].
  """

  features: Sequence[str]
  branch_units: Mapping[str, Sequence[int]]
  hidden_units: Sequence[int]
  num_outputs: int
  dropout_rate: float
  activation: str
  head: str

  def _dense_block(self, x: jax.Array, units: Sequence[int], prefix: str, train: bool):
    for i, width in enumerate(units):
      x = nn.Dense(width, name=f'{prefix}_{i}')(x)
      x = ACTIVATIONS[self.activation](x)
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return x

  @nn.compact
  def __call__(self, inputs: Mapping[str, jax.Array], *, train: bool) -> jax.Array:
    branches = [
      self._dense_block(inputs[name], self.branch_units[name], name, train)
      for name in self.features
    ]
    x = jnp.concatenate(branches, axis=-1) if len(branches) > 1 else branches[0]
    x = self._dense_block(x, self.hidden_units, 'fusion', train)
    if self.head == 'regression':
      return nn.sigmoid(nn.Dense(1, name='head')(x)[..., 0])
    return nn.Dense(self.num_outputs, name='head')(x)


class Ensemble(FusionMLP):
  """`size` FusionMLPs with their own initialisation and dropout, on the same inputs.

  Outputs are stacked along a new leading member axis ([size, batch, K] or [size, batch]);
  the steps average the members' losses in training and their class probabilities (or scores)
  in evaluation. Parameters carry the same leading axis.
  """

  size: int = 2

  @nn.compact
  def __call__(self, inputs: Mapping[str, jax.Array], *, train: bool) -> jax.Array:
    members = nn.vmap(
      _Member,
      variable_axes={'params': 0},
      split_rngs={'params': True, 'dropout': True},
      in_axes=None,
      out_axes=0,
      axis_size=self.size,
    )
    fields = {f: getattr(self, f) for f in _FIELDS}
    return members(**fields, train=train, name='members')(inputs)


class _Member(FusionMLP):
  """A FusionMLP whose `train` flag is an attribute (`nn.vmap` maps no keyword arguments)."""

  train: bool = False

  def __call__(self, inputs: Mapping[str, jax.Array]) -> jax.Array:  # type: ignore[override]
    return super().__call__(inputs, train=self.train)


_FIELDS = (
  'features',
  'branch_units',
  'hidden_units',
  'num_outputs',
  'dropout_rate',
  'activation',
  'head',
)


def ensemble_size(model: FusionMLP) -> int:
  """Members whose outputs the model stacks (1: a plain FusionMLP, no member axis)."""
  return model.size if isinstance(model, Ensemble) else 1


def create_model(config: ml_collections.ConfigDict) -> FusionMLP:
  """The model `config.model` and `config.features` describe.

  Raises:
    InputError: unknown activation or head, or a feature without `model.branch_units`.
  """
  m = config.model
  if m.activation not in ACTIVATIONS:
    raise InputError(
      f'config.model.activation must be one of {sorted(ACTIVATIONS)}, got {m.activation!r}.'
    )
  if m.head not in HEADS:
    raise InputError(f'config.model.head must be one of {HEADS}, got {m.head!r}.')
  if not config.features:
    raise InputError('config.features must name at least one feature.')
  missing = [f for f in config.features if f not in m.branch_units]
  if missing:
    raise InputError(f'config.model.branch_units has no entry for features {missing}.')
  fields = dict(
    features=tuple(config.features),
    branch_units={f: tuple(m.branch_units[f]) for f in config.features},
    hidden_units=tuple(m.hidden_units),
    num_outputs=config.num_classes,
    dropout_rate=m.dropout,
    activation=m.activation,
    head=m.head,
  )
  if m.ensemble_size < 1:
    raise InputError(f'config.model.ensemble_size must be >= 1, got {m.ensemble_size}.')
  if m.ensemble_size == 1:
    return FusionMLP(**fields)
  return Ensemble(**fields, size=m.ensemble_size)
