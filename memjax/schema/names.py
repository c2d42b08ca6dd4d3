"""Names other modules own that the field table allows (memjax/schema/fields.py).

Each is read from its owner's source without importing the owner (the owners import JAX, Flax,
scikit-learn...), so validation costs no start-up time and follows names added there.
"""

import ast
import functools
import importlib
import importlib.util

MIN_CLASSES, MAX_CLASSES = 2, 8  # memjax.labels; the test checks these copies
ON_ERROR = ('skip', 'stop')  # memjax.predict and memjax.features.extract; the test checks it
# The baseline regressors and SVR kernel approximations (memjax/experiments/baseline_models.py).
METHODS = ('svr', 'ridge', 'ridge_cv', 'knn', 'tree')
APPROXIMATIONS = ('nystroem', 'none')


@functools.cache
def declared(module: str, name: str, keys_only: bool = True):
  """`module.name` read from the module's source without importing it: a tuple of names (a
  dict's keys with `keys_only`), or the dict. The module is imported only when its source builds
  the value in a way this reader does not follow.
  """
  spec = importlib.util.find_spec(module)
  try:
    with open(spec.origin, encoding='utf-8') as f:
      tree = ast.parse(f.read())
    value = None
    for node in tree.body:
      if isinstance(node, ast.Assign) and any(
        isinstance(t, ast.Name) and t.id == name for t in node.targets
      ):
        value = _literal(node.value, keys_only)
      elif isinstance(node, ast.AugAssign) and getattr(node.target, 'id', None) == name:
        value = value + _literal(node.value, keys_only)
    if value is not None:
      return value
  except (OSError, SyntaxError, TypeError, ValueError):
    pass
  found = getattr(importlib.import_module(module), name)
  return tuple(found) if keys_only else found


def _literal(node: ast.expr, keys_only: bool):
  if isinstance(node, ast.Dict) and keys_only:
    return tuple(ast.literal_eval(k) for k in node.keys)
  value = ast.literal_eval(node)
  return value if isinstance(value, dict) else tuple(value)


def _owned(module: str, name: str):
  return functools.partial(declared, module, name)


DATA_NAMES = _owned('memjax.datasets', 'PROTOCOLS')


def data_protocols() -> dict:
  """memjax.datasets.PROTOCOLS: data name -> the protocols it supports."""
  return declared('memjax.datasets', 'PROTOCOLS', keys_only=False)


HEADS = _owned('memjax.models', 'HEADS')
ACTIVATIONS = _owned('memjax.models', 'ACTIVATIONS')
OPTIMIZERS = _owned('memjax.optimizers', 'NAMES')
SCHEDULES = _owned('memjax.optimizers', 'SCHEDULES')
SCORE_VALUES = _owned('memjax.labels', 'SCORE_VALUES')
STORE_DTYPES = _owned('memjax.features.store_format', 'DTYPES')


def extractor_kinds() -> tuple:
  """memjax.features.registry.KINDS, read when validating (other work adds kinds)."""
  from memjax.features import registry

  return tuple(registry.KINDS)
