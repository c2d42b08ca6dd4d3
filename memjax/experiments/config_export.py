"""Writes a config as a ready `configs/*.py`-style file: `configs.default` plus the differences.

The file imports `configs.default`, so it runs from the repository root like any other config:
`python main.py --config=PATH --workdir=...`.
"""

import textwrap

import ml_collections

from configs import default
from memjax.experiments import tables


def _path(prefix: str, key: str) -> str:
  return f'{prefix}.{key}' if key.isidentifier() else f'{prefix}[{key!r}]'


def _literal(value) -> str:
  if isinstance(value, dict):
    return f'ml_collections.ConfigDict({value!r})'
  return repr(value)


def differences(config: dict, base: dict, prefix: str = 'config') -> list[str]:
  """Assignment lines that turn `base` into `config` (both from `ConfigDict.to_dict()`)."""
  lines = []
  for key, value in config.items():
    target = _path(prefix, key)
    if isinstance(value, dict) and isinstance(base.get(key), dict):
      lines += differences(value, base[key], target)
    elif key not in base or base[key] != value:
      lines.append(f'{target} = {_literal(value)}')
  return lines


def render(config: ml_collections.ConfigDict, docstring: str) -> str:
  """The source of a config file equal to `config`, whose module docstring is `docstring`."""
  lines = differences(config.to_dict(), default.get_config().to_dict())
  body = '\n'.join(f'  {line}' for line in lines) or '  pass'
  paragraphs = docstring.split('\n\n')
  doc = '\n\n'.join(textwrap.fill(p, 99, break_long_words=False) for p in paragraphs)
  return (
    f'"""{doc}\n"""\n\n'
    'import ml_collections  # noqa: F401 (used when a ConfigDict literal is needed)\n\n'
    'from configs import default\n\n\n'
    'def get_config() -> ml_collections.ConfigDict:\n'
    '  config = default.get_config()\n'
    f'{body}\n'
    '  return config\n'
  )


def write(path: str, config: ml_collections.ConfigDict, docstring: str) -> None:
  """Writes `render(config, docstring)` to `path` atomically."""
  tables.write_text(path, render(config, docstring))
