"""The workdir is the model: the run record, extractor identity, finished folds, workdir kinds,
and modes that start from `--workdir` alone."""

import csv
import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import scored_folders

from memjax import (
  checkpointing,
  evaluate,
  extract,
  predict,
  recorded_config,
  results,
  run_record,
  train,
)
from memjax.errors import InputError
from memjax.experiments import baselines

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _image_config(test_config, tmp):
  config = test_config
  config.data.name = 'image_folder'
  config.data.dir = str(tmp / 'images')
  config.data.features_dir = str(tmp / 'store')
  config.features = ('color_grid',)
  config.model.branch_units.color_grid = (16,)
  config.extract.batch_size = 8
  config.extract.dtype = 'float32'
  return config


@pytest.fixture(scope='module')
def image_run(tmp_path_factory):
  """color_grid features of 96 scored PNGs extracted to a store, then trained (2 folds):
  (config, workdir, summary, root)."""
  from configs import test as test_cfg

  tmp = tmp_path_factory.mktemp('identity')
  scored_folders.write_brightness_folder(tmp / 'images', 96, seed=3)
  config = _image_config(test_cfg.get_config(), tmp)
  extract.extract(config, str(tmp / 'extract'))
  workdir = str(tmp / 'run')
  summary = train.train_and_evaluate(config, workdir)
  return config, workdir, summary, tmp


def _copy(workdir, tmp_path, name='copy'):
  target = str(tmp_path / name)
  shutil.copytree(workdir, target)
  return target


def test_the_record_holds_kind_config_extractors_and_rebuilds_the_config(image_run):
  config, workdir, _, _ = image_run
  record = run_record.read(workdir)
  assert record['format'] == run_record.FORMAT and record['kind'] == 'train'
  assert record['config'] == json.loads(json.dumps(config.to_dict()))
  identity = record['extractors']['color_grid']
  assert identity['extractor'] == 'color_grid' and identity['dim'] == 48
  assert identity['input_size'] == [224, 224]
  rebuilt = recorded_config.config_of(workdir)
  assert rebuilt.to_dict() == config.to_dict()
  assert run_record.result_fields(rebuilt) == record['fields']


def test_predict_from_the_workdir_alone_equals_predict_with_the_config(image_run):
  config, workdir, _, tmp = image_run
  paths = [str(tmp / 'images' / f'{i:03d}.png') for i in range(8)]
  given, _, _ = predict.Predictor(config, workdir).predict_paths(paths)
  alone, _, _ = predict.Predictor(None, workdir).predict_paths(paths)
  np.testing.assert_array_equal(given, alone)


def test_predict_with_another_extractor_is_refused_naming_both(image_run):
  config, workdir, _, _ = image_run
  other = config.copy_and_resolve_references()
  other.extractors.color_grid.flip = True  # same width, other features
  with pytest.raises(InputError) as e:
    predict.Predictor(other, workdir)
  message = str(e.value)
  assert message.startswith('the config differs from the run')
  assert 'extractors.color_grid.flip: False -> True' in message


def test_an_extractor_that_differs_only_in_its_files_is_refused(image_run, monkeypatch):
  """Same config fields, other weights (a user's file changed on disk): the identity differs."""
  config, workdir, _, _ = image_run
  from memjax.features import registry

  plain = registry.color_grid
  monkeypatch.setattr(
    registry, 'color_grid', lambda: dataclasses.replace(plain(), weights_sha256='ab')
  )
  with pytest.raises(InputError) as e:
    predict.Predictor(config, workdir)
  assert str(e.value).startswith(
    "feature 'color_grid': config.extractors.color_grid is not the extractor of the model trained"
  )
  assert "weights_sha256 None vs 'ab' (there vs here)" in str(e.value)


def test_training_on_a_store_with_another_extractor_is_refused_before_writing(image_run, tmp_path):
  config, _, _, _ = image_run
  other = config.copy_and_resolve_references()
  other.extractors.color_grid.flip = True
  workdir = str(tmp_path / 'new')
  with pytest.raises(InputError) as e:
    train.train_and_evaluate(other, workdir)
  assert str(e.value).startswith(
    "feature 'color_grid': config.extractors.color_grid is not the extractor of the feature store"
  )
  assert "extractor 'color_grid' vs 'color_grid+flip'" in str(e.value)
  assert not os.path.exists(workdir)


def _unfinish(workdir, fold):
  """The fold as a run killed mid-training leaves it: only its first checkpoint, no eval.json."""
  fdir = os.path.join(workdir, f'fold_{fold}')
  saved = checkpointing.saved_steps(fdir)
  for step in saved[1:]:
    shutil.rmtree(os.path.join(fdir, 'checkpoints', str(step)))
  os.remove(os.path.join(fdir, 'eval.json'))
  return saved


def test_evaluate_refuses_an_unfinished_fold_and_train_finishes_it(image_run, tmp_path):
  config, workdir, summary, _ = image_run
  copy = _copy(workdir, tmp_path)
  saved = _unfinish(copy, 0)
  before = sorted(os.listdir(copy))
  with pytest.raises(InputError) as e:
    evaluate.evaluate(config, copy)
  assert str(e.value) == (
    f'{copy}: fold 0 (step {saved[0]} of {saved[-1]}) did not finish training; nothing was '
    'written. Re-run --mode=train to finish, or leave them out with --config.data.run_folds.'
  )
  assert sorted(os.listdir(copy)) == before
  assert not os.path.exists(os.path.join(copy, 'fold_0', 'eval.json'))
  # An eval.json of another checkpoint than config.eval.checkpoint picks is not a finished fold
  # for train (fold 1 is scored again), nor is one left while the checkpoints stop short.
  fold1 = os.path.join(copy, 'fold_1')
  best = checkpointing.chosen_step(fold1, 'best')
  other_step = next(s for s in checkpointing.saved_steps(fold1) if s != best)
  config_at = config.copy_and_resolve_references()
  config_at.eval.checkpoint, config_at.data.run_folds = str(other_step), (1,)
  assert evaluate.evaluate(config_at, copy)['folds'][0]['checkpoint_step'] == other_step
  with open(os.path.join(copy, 'fold_0', 'eval.json'), 'w') as f:
    json.dump(summary['folds'][0], f)
  assert evaluate.finished_result(copy, 0, saved[-1], 'best') is None  # checkpoints stop short
  total1 = checkpointing.saved_steps(fold1)[-1]
  assert evaluate.finished_result(copy, 1, total1, 'best') is None  # another step scored
  again = train.train_and_evaluate(config, copy)
  got = [f['spearman'] for f in again['folds']]
  assert got == pytest.approx([f['spearman'] for f in summary['folds']], abs=1e-6)
  assert [f['checkpoint_step'] for f in again['folds']] == [
    f['checkpoint_step'] for f in summary['folds']
  ]


def test_a_workdir_belongs_to_one_kind_of_run(image_run, tmp_path):
  config, workdir, _, _ = image_run
  copy = _copy(workdir, tmp_path)
  listing = {p: os.path.getmtime(os.path.join(copy, p)) for p in os.listdir(copy)}
  with pytest.raises(InputError, match=r'holds a train run \(run.json\); --mode=baseline runs'):
    baselines.run(config, copy)
  assert {p: os.path.getmtime(os.path.join(copy, p)) for p in os.listdir(copy)} == listing
  base = str(tmp_path / 'baseline')
  bconfig = config.copy_and_resolve_references()
  bconfig.baseline.method, bconfig.baseline.num_trials = 'ridge', 2
  bconfig.baseline.startup_trials = 1
  baselines.run(bconfig, base)
  assert run_record.kind_of(base) == 'baseline'
  written = results.read_json(os.path.join(base, 'summary.json'))
  with pytest.raises(InputError, match=r'holds a baseline run \(run.json\); --mode=train runs'):
    train.train_and_evaluate(config, base)
  with pytest.raises(InputError, match='--mode=predict runs only in a train workdir'):
    predict.Predictor(None, base)
  assert results.read_json(os.path.join(base, 'summary.json')) == written
  # A baseline re-run with other baseline settings is another run.
  bconfig.baseline.num_trials = 3
  with pytest.raises(InputError, match=r'baseline.num_trials: 2 -> 3'):
    baselines.run(bconfig, base)


def test_a_legacy_workdir_still_evaluates_and_says_once_what_it_cannot_check(
  image_run, tmp_path, caplog
):
  config, workdir, summary, _ = image_run
  copy = _copy(workdir, tmp_path)
  record = run_record.read(copy)
  with open(os.path.join(copy, 'run.json'), 'w') as f:
    json.dump({'fields': record['fields'], 'data': record['data']}, f)  # format 1
  with caplog.at_level(logging.WARNING):
    again = evaluate.evaluate(config, copy)
    predict.Predictor(config, copy)
  assert [f['spearman'] for f in again['folds']] == [f['spearman'] for f in summary['folds']]
  said = [r.getMessage() for r in caplog.records if 'cannot be checked' in r.getMessage()]
  assert said == [
    f'{copy}/run.json was recorded before memjax kept the extractors behind the features: it '
    'cannot be checked.'
  ]
  assert recorded_config.config_of(copy).to_dict() == config.to_dict()  # from config.json


def test_a_classification_summary_says_its_classes_and_one_fold_no_sd(image_run, tmp_path, caplog):
  config, workdir, summary, _ = image_run
  workdir = _copy(workdir, tmp_path)
  assert summary['num_classes'] == 4 and len(summary['thresholds']) == 2
  assert summary['spearman_std'] == pytest.approx(
    np.std([f['spearman'] for f in summary['folds']], ddof=1)
  )
  one = config.copy_and_resolve_references()
  one.data.run_folds = (1,)
  with caplog.at_level(logging.INFO):
    result = evaluate.evaluate(one, workdir)
  assert result['spearman_std'] is None
  lines = [r.getMessage() for r in caplog.records if 'mean test Spearman' in r.getMessage()]
  assert lines == [f'mean test Spearman over 1 fold: {result["spearman_mean"]:.4f}']


def _main(*args, cwd=ROOT):
  env = dict(os.environ, PYTHONPATH=ROOT)
  return subprocess.run(
    [sys.executable, os.path.join(ROOT, 'main.py'), *args],
    capture_output=True,
    text=True,
    env=env,
    cwd=cwd,
    timeout=300,
  )


def test_main_evaluates_and_predicts_from_the_workdir_alone(image_run, tmp_path):
  _, workdir, summary, tmp = image_run
  copy = _copy(workdir, tmp_path)
  out = str(tmp_path / 'scores.csv')
  done = _main(
    '--mode=predict', f'--workdir={copy}', f'--input={tmp / "images"}', f'--output={out}'
  )
  assert done.returncode == 0, done.stderr[-2000:]
  with open(out, newline='') as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 96 and all(r['score'] for r in rows)
  refused = _main(
    '--mode=evaluate', f'--workdir={copy}', '--config.model.head=regression', '--config.seed=7'
  )
  assert refused.returncode == 2
  last = refused.stderr.strip().splitlines()[-1]
  assert last.startswith(f'memjax: error: {copy} holds another run (recorded in run.json): ')
  assert "model.head: 'classification' -> 'regression'" in last
  assert 'these fields say what the trained parameters mean' in last
  again = _main('--mode=evaluate', f'--workdir={copy}', '--config.eval_batch_size=32')
  assert again.returncode == 0, again.stderr[-2000:]
  evaluated = results.read_json(os.path.join(copy, 'summary.json'))
  assert [f['spearman'] for f in evaluated['folds']] == pytest.approx(
    [f['spearman'] for f in summary['folds']], abs=1e-6
  )
  nothing = _main('--mode=evaluate', f'--workdir={tmp_path / "empty"}')
  assert nothing.returncode == 2
  assert 'records no run' in nothing.stderr.strip().splitlines()[-1]


def test_evaluate_and_transfer_with_an_output_read_a_read_only_workdir(image_run, tmp_path):
  """`config.eval.output` and `config.transfer.output`: the results go there and the trained
  workdir, on a read-only mount, is only read (the lock too)."""
  import ml_collections
  import mounts

  from memjax.experiments import transfer

  config, workdir, summary, tmp = image_run
  copy = _copy(workdir, tmp_path)
  with mounts.read_only_view(copy, str(tmp_path / 'ro')) as ro:
    out = str(tmp_path / 'evaluated.json')
    done = _main('--mode=evaluate', f'--workdir={ro}', f'--output={out}')  # config.eval.output
    assert done.returncode == 0, done.stderr[-2000:]
    evaluated = results.read_json(out)
    assert [f['spearman'] for f in evaluated['folds']] == pytest.approx(
      [f['spearman'] for f in summary['folds']], abs=1e-6
    )
    refused = _main('--mode=evaluate', f'--workdir={ro}')  # it would write summary.json there
    assert refused.returncode == 2 and 'Read-only file system' in refused.stderr
    other = config.copy_and_resolve_references()
    other.transfer.datasets.same = ml_collections.ConfigDict(
      {
        'data': {'name': 'image_folder', 'dir': config.data.dir},
        'seed': None,
        'first_row': 0,
        'paper': None,
        'about': 'the training images again',
      }
    )
    other.transfer.output = str(tmp_path / 'transfer_out')
    moved = transfer.transfer(other, ro)
  assert moved['datasets'][0]['num_images'] == 96
  assert os.path.exists(tmp_path / 'transfer_out' / 'transfer' / 'same.json')
  assert os.path.exists(tmp_path / 'transfer_out' / 'transfer.json')
  assert sorted(os.listdir(copy)) == sorted(os.listdir(workdir))  # nothing new in the workdir
