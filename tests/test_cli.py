"""The `memjax` command (memjax/cli.py): `memjax MODE --flags` is `python main.py --mode=MODE`.

The installed console script is `memjax.cli:console_main` (pyproject.toml); `python -m memjax`
runs the same function, so these tests run it that way from the checkout.
"""

import json
import os
import subprocess
import sys
import tomllib

from memjax import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'}


def _run(args: list[str], timeout=300) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, env=ENV, timeout=timeout
  )


def _error_line(proc: subprocess.CompletedProcess) -> str:
  lines = [line for line in proc.stderr.splitlines() if line.startswith('memjax: error: ')]
  assert len(lines) == 1, proc.stderr[-3000:]
  assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
  return lines[0]


def test_console_script_is_declared():
  with open(os.path.join(ROOT, 'pyproject.toml'), 'rb') as f:
    project = tomllib.load(f)
  module, function = project['project']['scripts']['memjax'].split(':')
  assert (module, function) == ('memjax.cli', 'console_main') and callable(cli.console_main)
  assert project['tool']['setuptools']['packages']['find']['include'] == ['memjax*', 'configs*']


def test_mode_word_becomes_the_mode_flag():
  argv = ['memjax', 'evaluate', '--config=configs/test.py', '--workdir=/w']
  assert cli.mode_argv(argv) == [
    'memjax',
    '--mode=evaluate',
    '--config=configs/test.py',
    '--workdir=/w',
  ]
  assert cli.mode_argv(['memjax', '--config=c', '--mode=predict']) == [
    'memjax',
    '--config=c',
    '--mode=predict',
  ]
  assert cli.mode_argv(['memjax', 'report', '--mode=report']) == [
    'memjax',
    '--mode=report',
    '--mode=report',
  ]


def test_unknown_mode_names_the_closest(tmp_path):
  proc = _run(['-m', 'memjax', 'evalute', '--config=configs/test.py', f'--workdir={tmp_path}'])
  assert proc.returncode == 2
  line = _error_line(proc)
  assert "unknown mode 'evalute'; did you mean 'evaluate'?" in line, line


def test_contradicting_mode_flag_is_refused(tmp_path):
  flags = ['--mode=evaluate', '--config=configs/test.py', f'--workdir={tmp_path}']
  proc = _run(['-m', 'memjax', 'train', *flags])
  assert proc.returncode == 2
  assert "mode 'train' and --mode=evaluate disagree" in _error_line(proc)


def test_same_error_as_main_py(tmp_path):
  """`memjax evaluate` on a workdir with no run fails exactly as main.py --mode=evaluate does."""
  flags = ['--config=configs/test.py', f'--workdir={tmp_path / "none"}']
  by_command = _run(['-m', 'memjax', 'evaluate', *flags])
  by_main = _run(['main.py', '--mode=evaluate', *flags])
  assert by_command.returncode == by_main.returncode != 0
  assert _error_line(by_command) == _error_line(by_main)


def test_train_through_the_command(tmp_path):
  workdir = tmp_path / 'run'
  proc = _run(['-m', 'memjax', 'train', '--config=configs/test.py', f'--workdir={workdir}'], 600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(workdir / 'summary.json') as f:
    summary = json.load(f)
  assert [fold['fold'] for fold in summary['folds']] == [0, 1]
  assert summary['spearman_mean'] > 0.3  # configs/test.py's planted signal is learnt


def test_none_unsets_an_optional_field():
  """`--config.report.sweep=None` unsets the field (ml_collections alone keeps the text 'None')."""
  from configs import report as report_config

  config = report_config.get_config()
  config.report.sweep, config.data.name = 'None', 'None'
  argv = ['memjax', '--config.report.sweep=None', '--config.data.name=None', '--config.seed=0']
  cli.unset_none_overrides(config, argv)
  assert config.report.sweep is None
  assert config.data.name is None  # validation then names it (a dataset name is required)
  assert config.report.search == '/tmp/memjax/search'
