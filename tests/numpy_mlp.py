"""Independent references for the end-to-end tests: the fusion MLP's forward pass, the s_k of
both rules and the colour-grid feature, written in NumPy from their definitions (never by
calling memjax), and orbax reads of a checkpoint's stored items straight from the workdir."""

import json
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
from PIL import Image

ACTIVATIONS = {'relu': lambda x: np.maximum(x, 0.0), 'tanh': np.tanh}


def _dense_block(params: dict, x: np.ndarray, prefix: str, activation: str) -> np.ndarray:
  i = 0
  while f'{prefix}_{i}' in params:
    layer = params[f'{prefix}_{i}']
    x = ACTIVATIONS[activation](x @ np.asarray(layer['kernel'], np.float64) + layer['bias'])
    i += 1
  return x


def forward(params: dict, inputs: dict, features, activation: str = 'relu') -> np.ndarray:
  """Outputs of the head ([N, K] logits, or [N] sigmoid scores for a 1-unit head) of the Flax
  param tree `params`: per feature its Dense layers `<name>_<i>` (x @ kernel + bias, then the
  activation), the branches concatenated in `features` order, `fusion_<i>`, then `head`."""
  branches = [
    _dense_block(params, np.asarray(inputs[n], np.float64), n, activation) for n in features
  ]
  x = _dense_block(params, np.concatenate(branches, axis=-1), 'fusion', activation)
  out = x @ np.asarray(params['head']['kernel'], np.float64) + params['head']['bias']
  if out.shape[-1] == 1:
    return 1.0 / (1.0 + np.exp(-out[..., 0]))
  return out


def softmax(logits: np.ndarray) -> np.ndarray:
  z = np.exp(logits - logits.max(axis=-1, keepdims=True))
  return z / z.sum(axis=-1, keepdims=True)


def thresholds(train_scores: np.ndarray, num_classes: int) -> np.ndarray:
  """The k/K quantiles (linear interpolation) of the training scores."""
  return np.quantile(np.asarray(train_scores, np.float64), np.arange(1, num_classes) / num_classes)


def classes(scores: np.ndarray, cuts: np.ndarray) -> np.ndarray:
  """Class k holds t_{k-1} < s <= t_k: the number of thresholds strictly below the score."""
  return (np.asarray(scores)[:, None] > np.asarray(cuts)[None, :]).sum(axis=1)


def score_values(train_scores: np.ndarray, cuts: np.ndarray, rule: str) -> np.ndarray:
  """s_k: the upper thresholds then 1.0, or the mean training score of each class."""
  if rule == 'upper_threshold':
    return np.append(cuts, 1.0)
  k = classes(train_scores, cuts)
  return np.array([np.mean(train_scores[k == c]) for c in range(len(cuts) + 1)])


def color_grid(path: str, crop: int = 224, grid: int = 4) -> np.ndarray:
  """The colour-grid feature of a square image file whose side is the extractor's `resize_to`
  (no resize happens): mean RGB / 255 of each of grid x grid cells of the centred crop."""
  pixels = np.asarray(Image.open(path).convert('RGB'), np.float64) / 255.0
  side = pixels.shape[0]
  assert pixels.shape[:2] == (side, side), 'color_grid() reads square images only'
  top = (side - crop) // 2
  x = pixels[top : top + crop, top : top + crop]
  cell = crop // grid
  return x.reshape(grid, cell, grid, cell, 3).mean(axis=(1, 3)).reshape(-1)


def checkpoint_steps(fold_dir: str) -> list[int]:
  """The steps of a fold's kept checkpoints, read from the folder names."""
  names = os.listdir(os.path.join(fold_dir, 'checkpoints'))
  return sorted(int(n) for n in names if n.isdigit())


def checkpoint_meta(fold_dir: str, step: int) -> dict:
  with open(os.path.join(fold_dir, 'checkpoints', str(step), 'meta', 'metadata')) as f:
    return json.load(f)


def checkpoint_params(fold_dir: str, step: int, item: str = 'params') -> dict:
  """A checkpoint item restored by orbax alone, as NumPy arrays (any device count wrote it)."""
  path = os.path.join(fold_dir, 'checkpoints', str(step), item)
  checkpointer = ocp.PyTreeCheckpointer()
  tree = checkpointer.metadata(path)
  tree = getattr(tree, 'item_metadata', tree)
  tree = getattr(tree, 'tree', tree)
  args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
  return checkpointer.restore(path, restore_args=args)


DERIVATIVES = {'relu': lambda z: (z > 0).astype(np.float64), 'tanh': lambda z: 1 - np.tanh(z) ** 2}


def _layers(params: dict, prefix: str) -> list[str]:
  names, i = [], 0
  while f'{prefix}_{i}' in params:
    names.append(f'{prefix}_{i}')
    i += 1
  return names


def loss_and_grads(
  params: dict, inputs: dict, target: np.ndarray, features, activation: str, head: str
) -> tuple[float, dict]:
  """Mean loss over the batch and its gradient (backpropagation written out by hand) of one
  fusion MLP: softmax cross-entropy on integer labels (`classification`), or the squared error
  of the sigmoid score (`regression`)."""
  act, d_act = ACTIVATIONS[activation], DERIVATIVES[activation]
  cache, grads = [], {}

  def block(x, names):
    for name in names:
      z = x @ np.asarray(params[name]['kernel'], np.float64) + params[name]['bias']
      cache.append((name, x, z))
      x = act(z)
    return x

  branch_out = [block(np.asarray(inputs[n], np.float64), _layers(params, n)) for n in features]
  widths = [b.shape[1] for b in branch_out]
  h = block(np.concatenate(branch_out, axis=1), _layers(params, 'fusion'))
  out = h @ np.asarray(params['head']['kernel'], np.float64) + params['head']['bias']
  n = out.shape[0]
  if head == 'regression':
    score = 1 / (1 + np.exp(-out[:, 0]))
    loss = float(np.mean((score - target) ** 2))
    d_out = (2 * (score - target) / n * score * (1 - score))[:, None]
  else:
    p = softmax(out)
    loss = float(-np.mean(np.log(p[np.arange(n), target])))
    d_out = p.copy()
    d_out[np.arange(n), target] -= 1
    d_out /= n
  grads['head'] = {'kernel': h.T @ d_out, 'bias': d_out.sum(0)}
  d_h = d_out @ np.asarray(params['head']['kernel'], np.float64).T

  def back(d_x, names_in_order):
    for name in reversed(names_in_order):
      _, x, z = next(c for c in cache if c[0] == name)
      d_z = d_x * d_act(z)
      grads[name] = {'kernel': x.T @ d_z, 'bias': d_z.sum(0)}
      d_x = d_z @ np.asarray(params[name]['kernel'], np.float64).T
    return d_x

  d_concat = back(d_h, _layers(params, 'fusion'))
  starts = np.cumsum([0] + widths)
  for i, name in enumerate(features):
    back(d_concat[:, starts[i] : starts[i + 1]], _layers(params, name))
  return loss, grads
