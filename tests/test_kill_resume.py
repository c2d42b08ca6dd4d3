"""Kill anywhere, resume exactly: real `main.py` runs SIGKILLed at exact points, then re-run.

`MEMJAX_KILL_AT=POINT:N` (memjax/fault_points.py) kills a run the N-th time it reaches POINT:
mid-step (a chunk of training steps in flight between two checkpoints), mid-checkpoint write (an
Orbax save written but not committed; `MID_SAVE` adds that point), between folds, mid-extraction
and inside a search trial. The re-run of the same command must end with exactly the results of
an uninterrupted run (per-fold Spearman to 1e-6, identical stored features), and the logs and
file times show that no finished fold, trial or extracted batch was done again. Also here: a
non-finite loss stops the fold and keeps its last good checkpoint.

Subprocesses use four CPU devices like this process, so the uninterrupted references run here,
in-process, on the same compiled programs (the session's persistent compilation cache, which the
subprocesses share).
"""

import csv
import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import optuna
import pytest
from PIL import Image
from study_heartbeats import age_heartbeat

from memjax import checkpointing, evaluate, extract, results, steps, train
from memjax.errors import DivergedError, InputError
from memjax.features import store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KILLED = -signal.SIGKILL
# main.py with the `checkpoint_write` point inside Orbax's save: after every item of the step is
# written into its temporary directory, before the rename that commits it.
MID_SAVE = """
import orbax.checkpoint as ocp
from absl import app

import main
from memjax.runtime import fault_points

finalize = ocp.CompositeCheckpointHandler.finalize


def finalize_or_die(self, directory):
  fault_points.reached('checkpoint_write')
  return finalize(self, directory)


ocp.CompositeCheckpointHandler.finalize = finalize_or_die
app.run(main.main)
"""
# Tiny search trials, all of one program (nothing left to sample) and that of the training test's
# model (`TRAIN_FLAGS`), so they reuse its compiled programs from the shared cache; 2 epochs, so
# that a fold has a checkpoint to resume from; 12 steps per epoch, in chunks of 5, 5 and 2.
TRAIN_FLAGS = ['--config=configs/test.py', '--config.model.hidden_units=(16,)']
SEARCH_FLAGS = {
  'data.synthetic.num_examples': 440,
  'num_epochs': 2,
  'search.num_trials': 2,
  'search.units': (16, 16),
  'search.dropout': (0.1, 0.1),
  'search.learning_rate': (3e-3, 3e-3),
  'search.activations': ('relu',),
  'search.optimizers': ('adam',),
  'search.startup_trials': 2,
  'search.pruner_startup_trials': 2,
  'search.heartbeat_secs': 1,
  'search.grace_secs': 3,
}


@pytest.fixture(scope='module')
def cache_dir(jax_cache_dir):
  return jax_cache_dir  # the session's (tests/conftest.py): programs compile once per session


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
  """The summary of an uninterrupted `TRAIN_FLAGS` run: in this process, on its 4 devices like
  the subprocesses (the same compiled programs, so the same numbers)."""
  from configs import test as test_cfg

  config = test_cfg.get_config()
  config.model.hidden_units = (16,)  # TRAIN_FLAGS
  return train.train_and_evaluate(config, str(tmp_path_factory.mktemp('reference')))


def _same_results(workdir: str, reference: dict) -> None:
  resumed = results.read_json(os.path.join(workdir, 'summary.json'))
  for a, b in zip(reference['folds'], resumed['folds'], strict=True):
    assert a['spearman'] == pytest.approx(b['spearman'], abs=1e-6)
    assert a['checkpoint_step'] == b['checkpoint_step']
  assert resumed['spearman_mean'] == pytest.approx(reference['spearman_mean'], abs=1e-6)


def _run(args: list[str], cache_dir: str, kill_at=None, code=None, devices: int = 4):
  """Runs main.py (or `python -c code`) with `args`; returns (exit code, log)."""
  env = {
    **os.environ,
    'JAX_PLATFORMS': 'cpu',
    'JAX_NUM_CPU_DEVICES': str(devices),
    'JAX_COMPILATION_CACHE_DIR': cache_dir,
    'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0',
    'JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES': '-1',
    'TF_CPP_MIN_LOG_LEVEL': '2',
  }
  env.pop('MEMJAX_KILL_AT', None)
  if kill_at:
    env['MEMJAX_KILL_AT'] = kill_at
  program = ['-c', code] if code else ['main.py']
  proc = subprocess.run(
    [sys.executable, *program, *args],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  return proc.returncode, proc.stdout + proc.stderr


def _killed(code: int, log: str, point: str) -> None:
  assert code == KILLED, f'exit code {code}, expected SIGKILL at {point}:\n{log[-4000:]}'
  assert f'MEMJAX_KILL_AT={point}: killing this process' in log


def _checkpoints(fold_dir: str) -> list[str]:
  directory = os.path.join(fold_dir, 'checkpoints')
  return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def test_train_killed_mid_step_mid_save_and_between_folds_resumes_exactly(
  cache_dir, reference, tmp_path
):
  workdir = str(tmp_path / 'run')
  fold0, fold1 = os.path.join(workdir, 'fold_0'), os.path.join(workdir, 'fold_1')
  args = [*TRAIN_FLAGS, f'--workdir={workdir}']

  # Mid-step: the 7th chunk of 5 steps (the 2nd of epoch 2) is in flight when the run dies.
  code, log = _run(args, cache_dir, 'train_chunk:7')
  _killed(code, log, 'train_chunk:7')
  spe = int(re.search(r'fold 0: .*; (\d+) steps per epoch', log).group(1))
  assert 5 < spe < 30  # so chunk 7 is inside epoch 2
  assert 'fold 0 epoch 1 ' in log and 'fold 0 epoch 2 ' not in log
  assert _checkpoints(fold0) == [str(spe)]

  # Mid-checkpoint write: resumes from the epoch-1 checkpoint and dies inside the next save.
  code, log = _run(args, cache_dir, 'checkpoint_write:1', MID_SAVE)
  _killed(code, log, 'checkpoint_write:1')
  assert 'taking over the lock of' in log  # the killed run's lock file, taken over
  assert f'fold 0: resuming from checkpoint step {spe}\n' in log
  left = _checkpoints(fold0)
  assert str(spe) in left and any(n.startswith(f'{2 * spe}.') and 'tmp' in n for n in left), left

  # Between folds: the unfinished save is ignored and removed; fold 0 resumes from the epoch-1
  # checkpoint, ends, is scored, and the run dies before fold 1 starts.
  code, log = _run(args, cache_dir, 'fold_done:1')
  _killed(code, log, 'fold_done:1')
  total = 3 * spe
  assert f'fold 0: resuming from checkpoint step {spe}\n' in log
  assert f'fold 0: this run trained steps {spe} to {total} of {total}' in log
  assert not any('tmp' in n for n in _checkpoints(fold0)), _checkpoints(fold0)
  eval0 = os.path.join(fold0, 'eval.json')
  mtime = os.path.getmtime(eval0)
  assert _checkpoints(fold1) == []

  # The re-run skips fold 0 and trains fold 1 alone.
  code, log = _run(args, cache_dir)
  assert code == 0, log[-4000:]
  assert 'fold 0 already finished' in log and 'fold 0: this run trained' not in log
  assert f'fold 1: this run trained steps 0 to {total} of {total}' in log
  assert os.path.getmtime(eval0) == mtime  # fold 0 was not scored again

  _same_results(workdir, reference)  # the same numbers as a run never interrupted


def _stopped(code: int, log: str, signame: str, stop: int) -> None:
  assert code == 75, log[-4000:]  # EX_TEMPFAIL: stopped, resumable
  assert 'Traceback' not in log
  errors = [line for line in log.splitlines() if line.startswith('memjax: error:')]
  assert errors == [
    f'memjax: error: SIG{signame}: fold 0 stopped at step {stop} with a checkpoint there; '
    're-run the same command to resume from it.'
  ]


def test_sigterm_and_sigint_stop_at_a_step_with_a_checkpoint_and_the_rerun_resumes_exactly(
  cache_dir, reference, tmp_path
):
  workdir = str(tmp_path / 'run')
  fold0 = os.path.join(workdir, 'fold_0')
  args = [*TRAIN_FLAGS, f'--workdir={workdir}']
  # SIGTERM while the 7th chunk of 5 steps (the 2nd of epoch 2) is in flight: it ends, then stops.
  code, log = _run(args, cache_dir, 'train_chunk:7:TERM')
  spe = int(re.search(r'fold 0: .*; (\d+) steps per epoch', log).group(1))
  assert -(-spe // 5) == 5  # chunks of 5 steps, cut at the epoch's end: chunk 7 is epoch 2's 2nd
  stop = spe + 10
  _stopped(code, log, 'TERM', stop)
  assert _checkpoints(fold0) == sorted([str(spe), str(stop)])  # epoch 1's and the stop's
  # The re-run resumes there; SIGINT in its 4th chunk (steps 2 spe to 2 spe + 5, after the 2
  # steps left of epoch 2 in chunks of 5, 5, 2) stops it at the end of that chunk.
  code, log = _run(args, cache_dir, 'train_chunk:4:INT')
  assert f'fold 0: resuming from checkpoint step {stop}\n' in log
  _stopped(code, log, 'INT', 2 * spe + 5)
  assert {str(2 * spe), str(2 * spe + 5)} <= set(_checkpoints(fold0))  # epoch 2's, the stop's
  code, log = _run(args, cache_dir)
  assert code == 0, log[-4000:]
  assert f'fold 0: resuming from checkpoint step {2 * spe + 5}\n' in log
  _same_results(workdir, reference)


def test_a_second_signal_exits_at_once():
  code = (
    'import os, signal, time\n'
    'from memjax.runtime import interrupts\n'
    'with interrupts.stop_requests():\n'
    '  os.kill(os.getpid(), signal.SIGINT)\n'
    '  assert interrupts.requested()\n'
    '  os.kill(os.getpid(), signal.SIGINT)\n'
    '  time.sleep(30)\n'
  )
  proc = subprocess.run(
    [sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=120
  )
  assert proc.returncode == 128 + signal.SIGINT, proc.stderr[-2000:]


def _image_folder(root, n: int) -> None:
  """`n` small PNGs with random colours and a scores.csv."""
  rng = np.random.default_rng(0)
  os.makedirs(root)
  with open(root / 'scores.csv', 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['image', 'score'])
    for i in range(n):
      pixels = rng.integers(0, 256, size=(24 + i % 5, 30, 3), dtype=np.uint8)
      Image.fromarray(pixels).save(root / f'{i:03d}.png')
      writer.writerow([f'{i:03d}.png', f'{rng.uniform():.4f}'])


def test_extraction_killed_mid_batch_resumes_to_identical_features(
  test_config, cache_dir, tmp_path
):
  _image_folder(tmp_path / 'images', 40)
  config = test_config
  config.data.name, config.data.dir = 'image_folder', str(tmp_path / 'images')
  config.features = ('color_grid',)
  config.extract.batch_size, config.extract.dtype = 8, 'float32'
  config.data.features_dir = str(tmp_path / 'reference')
  extract.extract(config, str(tmp_path))  # uninterrupted, in this process (4 devices too)

  directory = str(tmp_path / 'store')
  args = [
    '--config=configs/test.py',
    f'--workdir={tmp_path / "run"}',
    '--mode=extract',
    '--config.data.name=image_folder',
    f'--config.data.dir={config.data.dir}',
    f'--config.data.features_dir={directory}',
    "--config.features=('color_grid',)",
    '--config.extract.batch_size=8',
    '--config.extract.dtype=float32',
  ]
  # The third batch is computed, not yet written: two batches (16 rows) are in the store.
  code, log = _run(args, cache_dir, 'extract_batch:3')
  _killed(code, log, 'extract_batch:3')
  assert not store.is_complete(directory)
  code, log = _run(args, cache_dir)
  assert code == 0, log[-4000:]
  assert 'taking over the lock of' in log
  assert re.search(r'extracting .* for 40 images into .*, from row 16\n', log)  # no batch redone
  ids, features, meta = store.read_store(directory, mmap=False)
  ref_ids, ref_features, ref_meta = store.read_store(config.data.features_dir, mmap=False)
  assert list(ids) == list(ref_ids) and len(ids) == 40
  assert features.keys() == ref_features.keys() == {'color_grid'}
  np.testing.assert_array_equal(features['color_grid'], ref_features['color_grid'])
  assert {k: v for k, v in meta.items() if k != 'source'} == {
    k: v for k, v in ref_meta.items() if k != 'source'
  }


def test_search_worker_killed_mid_trial_is_retried_without_redoing_finished_work(
  cache_dir, tmp_path
):
  workdir = str(tmp_path / 'search')
  args = [
    *TRAIN_FLAGS[:1],
    f'--workdir={workdir}',
    '--mode=search',
    *[f'--config.{k}={v}' for k, v in SEARCH_FLAGS.items()],
  ]
  # 2 folds x 2 epochs x 3 chunks per trial: chunk 22 is in epoch 2 of trial 1's fold 1.
  code, log = _run(args, cache_dir, 'train_chunk:22')
  _killed(code, log, 'train_chunk:22')
  trial0, trial1 = (os.path.join(workdir, 'trials', f'trial_{i:04d}') for i in (0, 1))
  spe = int(re.search(r'fold 1: .*; (\d+) steps per epoch', log).group(1))
  assert _checkpoints(os.path.join(trial1, 'fold_1')) == [str(spe)]
  assert not os.path.exists(os.path.join(trial1, 'fold_1', 'eval.json'))
  done = {
    p: os.path.getmtime(p)
    for p in (
      os.path.join(trial0, 'fold_0', 'eval.json'),
      os.path.join(trial0, 'fold_1', 'eval.json'),
      os.path.join(trial1, 'fold_0', 'eval.json'),
    )
  }
  url = f'sqlite:///{workdir}/study.db'
  before = optuna.load_study(study_name='memjax', storage=url).trials
  assert [t.state.name for t in before] == ['COMPLETE', 'RUNNING']

  # As if grace_secs had passed since the kill (instead of sleeping that long).
  age_heartbeat(f'{workdir}/study.db', before[1]._trial_id, SEARCH_FLAGS['search.grace_secs'] + 1)
  code, log = _run(args, cache_dir)
  assert code == 0, log[-4000:]
  after = optuna.load_study(study_name='memjax', storage=url).trials
  assert [t.state.name for t in after] == ['COMPLETE', 'FAIL', 'COMPLETE']
  retry = after[2]
  assert retry.system_attrs['failed_trial'] == 1 and retry.params == before[1].params
  assert retry.user_attrs['workdir'] == trial1  # continued in the dead trial's directory
  assert 'fold 0 already finished' in log  # trial 1's finished fold
  assert f'fold 1: resuming from checkpoint step {spe}\n' in log
  assert f'fold 1: this run trained steps {spe} to {2 * spe} of {2 * spe}' in log
  assert log.count('this run trained steps') == 1  # nothing else was trained again
  assert after[0].value == before[0].value  # the finished trial was not recomputed
  assert retry.user_attrs['fold_spearman'][0] == before[1].user_attrs['fold_spearman'][0]
  for path, mtime in done.items():
    assert os.path.getmtime(path) == mtime, path
  with open(os.path.join(workdir, 'search.json')) as f:
    assert json.load(f)['states'] == {'COMPLETE': 2, 'FAIL': 1}


def test_non_finite_loss_stops_the_fold_and_keeps_the_last_good_checkpoint(
  test_config, tmp_path, monkeypatch
):
  config = test_config
  config.num_epochs, config.data.run_folds = 2, (0,)
  real = steps.jit_train_steps

  def diverging(*args, **kwargs):  # the loss turns NaN in the second epoch
    train_fn = real(*args, **kwargs)

    def step(state, *args):
      state, sums = train_fn(state, *args)
      if int(state.step) > spe:
        sums = {**sums, 'loss': sums['loss'] * np.nan}
      return state, sums

    return step

  spe = 22  # configs/test.py: 360 training rows of fold 0, batch 16
  monkeypatch.setattr(steps, 'jit_train_steps', diverging)
  workdir = str(tmp_path)
  with pytest.raises(DivergedError) as e:
    train.train_and_evaluate(config, workdir)
  assert str(e.value) == (
    f'fold 0: non-finite training loss nan in the epoch ending at step {2 * spe}; the last good '
    f'checkpoint (step {spe}) is kept. Lower config.optimizer.learning_rate?'
  )
  assert e.value.exit_code == 3 and isinstance(e.value, FloatingPointError)
  assert not isinstance(e.value, InputError)  # a diverged run is not "bad input"
  fold0 = os.path.join(workdir, 'fold_0')
  assert _checkpoints(fold0) == [str(spe)]
  assert not os.path.exists(os.path.join(fold0, 'eval.json'))
  mngr = checkpointing.manager(os.path.join(fold0, 'checkpoints'), read_only=True)
  assert checkpointing.restore_meta(mngr, spe)['epoch'] == 1

  # Resuming that fold, or scoring it, with another model is refused, naming what differs: the
  # workdir's run record, even with resume_changed (the field says what the parameters mean);
  # without a run record, the checkpoint's own record.
  monkeypatch.setattr(steps, 'jit_train_steps', real)
  config.model.hidden_units = (4,)
  for changed in (False, True):
    config.resume_changed = changed
    for mode in (train.train_and_evaluate, evaluate.evaluate):
      with pytest.raises(
        InputError, match=r'holds another run .*model.hidden_units: \[8\] -> \[4\]'
      ):
        mode(config, workdir)
  os.remove(os.path.join(workdir, 'run.json'))
  with pytest.raises(
    InputError, match=r'does not match the config \(checkpoint -> config\): model.hidden_units: '
  ):
    train.train_and_evaluate(config, workdir)
