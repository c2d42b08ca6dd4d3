"""The names the field table allows where another module owns the list (memjax/schema/fields.py).

Copies, so that validation imports nothing heavy (the owners import JAX, Flax, NumPy...) and reads
no source; tests/test_schema.py checks each against its owner, so a name added there fails the
test until it is added here. The baseline methods and approximations are the schema's own.
"""

# memjax.datasets.PROTOCOLS: data name -> the evaluation protocols it supports.
PROTOCOLS = {'synthetic': ('cv5',), 'lamem': ('cv5', 'official'), 'image_folder': ('cv5',)}
HEADS = ('classification', 'regression')  # memjax.models
ACTIVATIONS = ('relu', 'tanh')  # memjax.models (names of its functions)
OPTIMIZERS = ('adam', 'rmsprop', 'sgd')  # memjax.optimizers.NAMES
SCHEDULES = ('constant', 'cosine', 'warmup_cosine')  # memjax.optimizers
SCORE_VALUES = ('upper_threshold', 'class_mean')  # memjax.labels
MIN_CLASSES, MAX_CLASSES = 2, 8  # memjax.labels
STORE_DTYPES = ('float16', 'float32')  # memjax.features.store.spec.DTYPES
ON_ERROR = ('skip', 'stop')  # memjax.predict and memjax.extract
# The baseline regressors and SVR kernel approximations (memjax/experiments/baseline_models.py).
METHODS = ('svr', 'ridge', 'ridge_cv', 'knn', 'tree')
APPROXIMATIONS = ('nystroem', 'none')


def extractor_kinds() -> tuple:
  """memjax.features.registry.KINDS, read when validating the modes that build extractors (other
  work adds kinds; the registry imports JAX, so it is not imported for the others)."""
  from memjax.features import registry

  return tuple(registry.KINDS)
