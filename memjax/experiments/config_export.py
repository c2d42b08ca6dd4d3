"""Writes a config as a ready config file: `python main.py --config=PATH --workdir=...`.

By default the file is self-contained: it builds every field itself (placeholders such as
`data.dir` keep their type, so `--config.data.dir=...` still overrides them) and imports nothing
but `ml_collections`, so it runs from any folder. Given a `base` (a module name and the config its
`get_config()` returns), it instead imports that module and assigns only the differences, like the
hand-written `configs/*.py`. The library never imports the repository's `configs` package itself.
"""

import re
import textwrap
from typing import NamedTuple

import ml_collections

from memjax.experiments import tables


class Base(NamedTuple):
  """The config file to start from: `from <package> import <name>` then `<name>.get_config()`."""

  module: str  # dotted module name, e.g. 'configs.default'
  config: ml_collections.ConfigDict  # what its get_config() returns


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


def _type_name(kind: type) -> str:
  if kind.__module__ == 'builtins':
    return kind.__name__
  return f'{kind.__module__}.{kind.__qualname__}'


def assignments(config: ml_collections.ConfigDict, prefix: str = 'config') -> list[str]:
  """Assignment lines that build `config` from an empty ConfigDict named `prefix`.

  A None field whose type is known (a `config_dict.placeholder(T)`) stays a typed placeholder.
  """
  lines = []
  for key in config:
    value, target = config[key], _path(prefix, key)
    if isinstance(value, ml_collections.ConfigDict):
      lines.append(f'{target} = ml_collections.ConfigDict()')
      lines += assignments(value, target)
    elif value is None and config.get_type(key) is not type(None):
      lines.append(f'{target} = config_dict.placeholder({_type_name(config.get_type(key))})')
    else:
      lines.append(f'{target} = {_literal(value)}')
  return lines


def _header(docstring: str) -> str:
  paragraphs = docstring.split('\n\n')
  doc = '\n\n'.join(textwrap.fill(p, 99, break_long_words=False) for p in paragraphs)
  return f'"""{doc}\n"""\n\n'


def render(config: ml_collections.ConfigDict, docstring: str, base: Base | None = None) -> str:
  """The source of a config file equal to `config`, whose module docstring is `docstring`.

  Args:
    config: the config to write.
    docstring: the file's docstring (paragraphs separated by blank lines).
    base: None for a self-contained file; else the file imports `base.module` and assigns the
      differences from `base.config`.

  Returns:
    Python source whose `get_config()` returns a config equal to `config` (`to_dict()`).
  """
  if base is None:
    lines = assignments(config)
    modules = sorted(set(re.findall(r'placeholder\(([\w.]+)\.\w+\)', '\n'.join(lines))))
    body = '\n'.join(f'  {line}' for line in lines)
    return (
      f'{_header(docstring)}'
      + ''.join(f'import {m}\n' for m in modules)
      + 'import ml_collections\n'
      'from ml_collections import config_dict  # noqa: F401 (placeholders)\n\n\n'
      'def get_config() -> ml_collections.ConfigDict:\n'
      '  config = ml_collections.ConfigDict()\n'
      f'{body}\n'
      '  return config\n'
    )
  package, _, name = base.module.rpartition('.')
  import_line = f'from {package} import {name}' if package else f'import {name}'
  lines = differences(config.to_dict(), base.config.to_dict())
  body = '\n'.join(f'  {line}' for line in lines) or '  pass'
  return (
    f'{_header(docstring)}'
    'import ml_collections  # noqa: F401 (used when a ConfigDict literal is needed)\n\n'
    f'{import_line}\n\n\n'
    'def get_config() -> ml_collections.ConfigDict:\n'
    f'  config = {name}.get_config()\n'
    f'{body}\n'
    '  return config\n'
  )


def write(
  path: str, config: ml_collections.ConfigDict, docstring: str, base: Base | None = None
) -> None:
  """Writes `render(config, docstring, base)` to `path` atomically."""
  tables.write_text(path, render(config, docstring, base))
