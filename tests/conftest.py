"""Test set-up: four simulated CPU devices (before JAX initialises), TF kept off accelerators,
one persistent XLA compilation cache for the whole session, and the shared `trained` run of
configs/test.py.

README's command runs the tests in two pytest-xdist workers (`-n 2 --dist loadfile`: a file's
tests, and its module fixtures, stay on one worker); the workers share the controller's cache.

The cache: every `train.train_and_evaluate` call builds new jitted functions, so without it each
call compiles its programs again (~5 s of CPU, most of a tiny test run). With it, a program is
compiled once per session and loaded from disk afterwards, by this process and by every
subprocess the tests start (they inherit `JAX_COMPILATION_CACHE_DIR`). The cache is a fresh
temporary folder, removed at the end, unless `MEMJAX_TEST_JAX_CACHE` names a folder to keep.
"""

import os
import shutil
import sys
import tempfile

import jax

_SESSION_CACHE = 'MEMJAX_TEST_SESSION_JAX_CACHE'  # the controller's cache, for xdist workers
_WORKER = bool(os.environ.get('PYTEST_XDIST_WORKER'))
CACHE_DIR = (
  os.environ.get('MEMJAX_TEST_JAX_CACHE')
  or (os.environ.get(_SESSION_CACHE) if _WORKER else None)
  or tempfile.mkdtemp(prefix='memjax-jax-cache-')
)
_REMOVE_CACHE = not os.environ.get('MEMJAX_TEST_JAX_CACHE') and not _WORKER
os.makedirs(CACHE_DIR, exist_ok=True)
os.environ.update(
  {_SESSION_CACHE: CACHE_DIR},  # inherited by the workers, started after this runs
  JAX_COMPILATION_CACHE_DIR=CACHE_DIR,
  JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
  JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='-1',
)
jax.config.update('jax_num_cpu_devices', 4)
jax.config.update('jax_platforms', 'cpu')
jax.config.update('jax_compilation_cache_dir', CACHE_DIR)
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
jax.config.update('jax_persistent_cache_min_entry_size_bytes', -1)
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.set_visible_devices([], 'GPU')


def pytest_unconfigure(config):
  if _REMOVE_CACHE:  # by the process that made it (the controller, under pytest-xdist)
    shutil.rmtree(CACHE_DIR, ignore_errors=True)


@pytest.fixture(scope='session')
def jax_cache_dir() -> str:
  """The session's persistent compilation cache (also in `JAX_COMPILATION_CACHE_DIR`)."""
  return CACHE_DIR


@pytest.fixture
def test_config():
  """A fresh copy of configs/test.py."""
  from configs import test as test_cfg

  return test_cfg.get_config()


@pytest.fixture(scope='session')
def trained(tmp_path_factory):
  """configs/test.py trained and evaluated once, in this process on 4 devices: (config, workdir,
  summary). Shared by the end-to-end and the multi-process tests; tests may re-evaluate in the
  workdir but must not change the returned summary."""
  from configs import test as test_cfg
  from memjax import train

  config = test_cfg.get_config()
  workdir = str(tmp_path_factory.mktemp('run'))
  return config, workdir, train.train_and_evaluate(config, workdir)
