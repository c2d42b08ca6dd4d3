"""A persistent XLA compilation cache for modes that train many runs of the same shapes.

Each `train_and_evaluate` call builds new jitted functions, so every fold compiles its train,
eval and init programs again (on a small CPU machine, longer than a small fold trains). With the
cache on disk, folds, K values and search trials that share shapes compile once, and several
worker processes share the cache.
"""

import os

import jax
from absl import logging

CACHE_DIR = 'jax_cache'


def enable(workdir: str) -> str:
  """Points JAX's persistent compilation cache at `WORKDIR/jax_cache` (every program cached).

  Returns:
    The cache directory.
  """
  directory = os.path.join(os.path.abspath(workdir), CACHE_DIR)
  os.makedirs(directory, exist_ok=True)
  jax.config.update('jax_compilation_cache_dir', directory)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
  logging.info('persistent XLA compilation cache: %s', directory)
  return directory
