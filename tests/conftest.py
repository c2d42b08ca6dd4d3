"""Test set-up: four simulated CPU devices (before JAX initialises), TF kept off accelerators,
and the shared `trained` run of configs/test.py."""

import os
import sys

import jax

jax.config.update('jax_num_cpu_devices', 4)
jax.config.update('jax_platforms', 'cpu')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.set_visible_devices([], 'GPU')


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
