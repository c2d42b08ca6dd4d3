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
