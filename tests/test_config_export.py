"""memjax/experiments/config_export.py: exported config files load back equal, self-contained
(placeholders typed, command-line overrides work) or as differences from a base config file; the
library itself never imports the repository's `configs` package."""

import importlib
import importlib.util
import os
import subprocess
import sys

import ml_collections
import pytest
from absl import flags
from ml_collections import config_flags

from memjax.experiments import config_export

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = ('default', 'test', 'photos', 'transfer_photos', 'search', 'baseline_photos_svr')


def _load(path: str) -> ml_collections.ConfigDict:
  spec = importlib.util.spec_from_file_location('exported', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def _types(config: ml_collections.ConfigDict, prefix: str = '') -> dict:
  out = {}
  for key in config:
    value = config[key]
    if isinstance(value, ml_collections.ConfigDict):
      out.update(_types(value, f'{prefix}{key}.'))
    else:
      out[f'{prefix}{key}'] = config.get_type(key)
  return out


@pytest.mark.parametrize('name', SHIPPED)
def test_self_contained_file_equals_the_config_field_types_included(name, tmp_path):
  config = importlib.import_module(f'configs.{name}').get_config()
  path = str(tmp_path / 'best_config.py')
  config_export.write(path, config, f'Exported {name}.\n\nSecond paragraph.')
  with open(path) as f:
    source = f.read()
  assert 'configs' not in source.split('"""')[2]  # imports nothing from the repository
  assert source.startswith(f'"""Exported {name}.\n\nSecond paragraph.\n"""')
  loaded = _load(path)
  assert loaded.to_dict() == config.to_dict()
  assert _types(loaded) == _types(config)  # placeholders keep their type
  assert _types(config)['data.dir'] is str and loaded.data.dir == config.data.dir
  with pytest.raises(TypeError):
    loaded.num_epochs = 'three'  # type-safe like the original


def test_command_line_overrides_reach_placeholders_of_an_exported_file(tmp_path):
  from configs import test as test_cfg

  config = test_cfg.get_config()
  config.model.hidden_units = (7, 5)
  path = str(tmp_path / 'best_config.py')
  config_export.write(path, config, 'Best trial.')
  argv = ['prog', f'--config={path}', '--config.data.dir=/data/photos', '--config.num_epochs=9']
  values = flags.FlagValues()
  config_flags.DEFINE_config_file(
    'config', None, 'config', flag_values=values, lock_config=True, sys_argv=argv
  )
  values(argv)
  got = values.config
  assert got.data.dir == '/data/photos' and got.num_epochs == 9
  assert got.model.hidden_units == (7, 5)
  got.data.dir, got.num_epochs = config.data.dir, config.num_epochs
  assert got.to_dict() == config.to_dict()


def test_file_relative_to_a_base_assigns_only_the_differences(tmp_path, monkeypatch):
  from configs import default

  config = default.get_config()
  config.num_epochs = 17
  config.model.hidden_units = (3,)
  config.data.dir = '/x'
  base = config_export.Base('configs.default', default.get_config())
  source = config_export.render(config, 'Relative.', base)
  body = source.split('def get_config() -> ml_collections.ConfigDict:\n')[1].splitlines()
  assert body == [
    '  config = default.get_config()',
    "  config.data.dir = '/x'",
    '  config.model.hidden_units = (3,)',
    '  config.num_epochs = 17',
    '  return config',
  ]
  assert 'from configs import default\n' in source
  path = tmp_path / 'relative.py'
  path.write_text(source)
  monkeypatch.syspath_prepend(ROOT)
  assert _load(str(path)).to_dict() == config.to_dict()
  unchanged = config_export.render(default.get_config(), 'Same.', base)
  assert '  config = default.get_config()\n  pass\n  return config\n' in unchanged


def test_the_library_does_not_import_the_repository_configs_package():
  code = (
    'import sys; import memjax.experiments.config_export; '
    "print(sorted(m for m in sys.modules if m.split('.')[0] == 'configs'))"
  )
  proc = subprocess.run(
    [sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=300
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.strip().splitlines()[-1] == '[]'
