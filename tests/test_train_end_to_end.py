"""train -> evaluate on configs/test.py, resume after an interruption, and the CLI.

`trained` (tests/conftest.py) is the run of configs/test.py on 4 devices that these tests share.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from memjax import checkpointing, evaluate, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_summary_contents(trained):
  config, workdir, summary = trained
  with open(os.path.join(workdir, 'summary.json')) as f:
    on_disk = json.load(f)
  assert on_disk['spearman_mean'] == pytest.approx(summary['spearman_mean'])
  assert on_disk['dataset'] == 'synthetic' and on_disk['synthetic'] is True
  assert 'SYNTHETIC' in on_disk['data_description']
  assert on_disk['protocol'] == 'cv5' and on_disk['num_classes'] == 4
  assert on_disk['num_devices'] == 4 and 0 < on_disk['wall_seconds'] < 1800
  assert 0 < on_disk['ceiling'] < 1
  assert len(on_disk['thresholds']) == 2 and all(len(t) == 3 for t in on_disk['thresholds'])
  folds = on_disk['folds']
  assert [f['fold'] for f in folds] == [0, 1]
  assert sum(f['num_examples'] for f in folds) == config.data.synthetic.num_examples
  for f in folds:
    assert {'spearman', 'pearson', 'mse', 'accuracy', 'num_examples'} <= set(f)
  rho = [f['spearman'] for f in folds]
  assert on_disk['spearman_mean'] == pytest.approx(np.mean(rho))
  assert on_disk['spearman_std'] == pytest.approx(np.std(rho, ddof=1))
  assert on_disk['spearman_mean'] > 0.3  # the planted signal is learnt
  assert os.path.exists(os.path.join(workdir, 'config.json'))
  events = os.listdir(os.path.join(workdir, 'fold_0'))
  assert any(name.startswith('events.out.tfevents') for name in events)


def test_evaluate_mode_reproduces_fold_spearman(trained):
  config, workdir, summary = trained
  again = evaluate.evaluate(config, workdir)
  for a, b in zip(summary['folds'], again['folds'], strict=True):
    assert a['spearman'] == pytest.approx(b['spearman'], abs=1e-6)
    assert a['checkpoint_step'] == b['checkpoint_step']


def test_checkpoint_from_four_devices_evaluates_on_one(trained):
  _, workdir, summary = trained
  proc = subprocess.run(
    [
      sys.executable,
      'main.py',
      '--config=configs/test.py',
      f'--workdir={workdir}',
      '--mode=evaluate',
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=600,
    env={**os.environ, 'JAX_PLATFORMS': 'cpu'},
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(os.path.join(workdir, 'summary.json')) as f:
    one = json.load(f)
  assert one['num_devices'] == 1 and one['mode'] == 'evaluate'
  for a, b in zip(summary['folds'], one['folds'], strict=True):
    assert a['spearman'] == pytest.approx(b['spearman'], abs=1e-5)


class _InterruptError(Exception):
  pass


def test_interrupted_run_resumes_to_the_same_summary(trained, tmp_path, monkeypatch):
  config, _, summary = trained
  save, calls = checkpointing.save, []

  def save_then_die(*args, **kwargs):
    save(*args, **kwargs)
    calls.append(args[1])
    if len(calls) == 4:  # fold 0 done (3 epochs), fold 1 after its first epoch
      raise _InterruptError

  workdir = str(tmp_path)
  monkeypatch.setattr(checkpointing, 'save', save_then_die)
  with pytest.raises(_InterruptError):
    train.train_and_evaluate(config, workdir)
  monkeypatch.setattr(checkpointing, 'save', save)
  fold0_eval = os.path.join(workdir, 'fold_0', 'eval.json')
  mtime = os.path.getmtime(fold0_eval)
  assert not os.path.exists(os.path.join(workdir, 'fold_1', 'eval.json'))
  assert not os.path.exists(os.path.join(workdir, 'summary.json'))
  resumed = train.train_and_evaluate(config, workdir)
  assert os.path.getmtime(fold0_eval) == mtime  # the finished fold was skipped
  for a, b in zip(summary['folds'], resumed['folds'], strict=True):
    assert a['spearman'] == pytest.approx(b['spearman'], abs=1e-6)
    assert a['checkpoint_step'] == b['checkpoint_step']


def test_unknown_config_key_is_rejected(tmp_path):
  proc = subprocess.run(
    [
      sys.executable,
      'main.py',
      '--config=configs/test.py',
      f'--workdir={tmp_path}',
      '--config.no_such_key=1',
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode != 0
  assert 'no_such_key' in proc.stderr
  assert not os.listdir(tmp_path)
