"""The bad-input matrix: every bad input stops with one line naming the file, line or field and
what was expected, and a non-zero exit (exit 2 from main.py, InputError in the library); nothing
written before is lost, and nothing new looks complete (no COMPLETE marker, no eval.json or
summary.json of a failed run). Image cases test both on_error settings: `skip` lists the bad
files with their errors and goes on, `stop` stops naming them. Full disks (simulated) stop with
the path and 'No space left on device', keep what was written, and a re-run resumes.

Each case writes its input with `bad_inputs` in the real on-disk formats; some run `main.py` in a
subprocess, the rest call the library function of the same mode in-process (faster).
"""

import csv
import dataclasses
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
from collections.abc import Callable

import bad_inputs as bi
import pytest

from memjax import checkpointing, evaluate, extract, predict, results, train
from memjax.errors import InputError
from memjax.features import store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = {
  'train': train.train_and_evaluate,
  'evaluate': evaluate.evaluate,
  'extract': extract.extract,
  'predict': predict.predict,
}
# Files that make a run or a store look finished; a failed run must not write or change them.
RESULT_FILES = {'summary.json', 'eval.json', 'COMPLETE', 'metadata.json', 'predictions.csv'}
STOP = {'extract.on_error': 'stop'}


@dataclasses.dataclass
class Ctx:
  tmp_path: pathlib.Path
  monkeypatch: pytest.MonkeyPatch
  request: pytest.FixtureRequest

  def trained(self) -> tuple[dict, str]:
    return self.request.getfixturevalue('trained_folder')


@dataclasses.dataclass(frozen=True)
class Case:
  """`build(ctx) -> Run` writes the bad input; the one-line message must match every regex of
  `expect`; `check(ctx, run)` looks at what is left (and may re-run). With `fails=False` the run
  succeeds (on_error='skip')."""

  build: Callable
  expect: tuple = ()
  via_main: bool = False
  fails: bool = True
  check: Callable | None = None
  xfail: str = ''


@pytest.fixture(scope='module')
def trained_folder(tmp_path_factory):
  """(overrides, workdir): color_grid features of 32 images, fold 0 trained for one epoch."""
  tmp = tmp_path_factory.mktemp('trained')
  overrides = bi.folder(tmp, n=32).overrides
  overrides.update({'data.run_folds': (0,), 'num_epochs': 1, 'batch_size': 4})
  overrides['eval_batch_size'] = 16
  extract.extract(bi.make_config(overrides), str(tmp))
  train.train_and_evaluate(bi.make_config(overrides), str(tmp / 'run'))
  return overrides, str(tmp / 'run')


def _failed_images_listed(ctx, run):
  directory = run.overrides['data.features_dir']
  assert os.path.isdir(directory) and not store.is_complete(directory)
  with open(os.path.join(directory, extract.FAILED_FILE)) as f:
    for entry in json.load(f).values():
      assert re.search(bi.BAD_IMAGES[entry['id']][1], entry['error']), entry


def _skipped_images_listed(ctx, run):
  ids, _, meta = store.read_store(run.overrides['data.features_dir'])
  assert len(ids) == 8 and not set(ids.tolist()) & set(bi.BAD_IMAGES)
  assert sorted(s['id'] for s in meta['skipped']) == sorted(bi.BAD_IMAGES)
  for skipped in meta['skipped']:
    assert skipped['path'] == str(ctx.tmp_path / 'images' / skipped['id'])
    assert re.search(bi.BAD_IMAGES[skipped['id']][1], skipped['error']), skipped


def _predictions_list_errors(ctx, run):
  with open(run.overrides['predict.output']) as f:
    rows = {os.path.basename(r['path']): r for r in csv.DictReader(f)}
  assert len(rows) == 7
  for name, row in rows.items():
    if name in bi.BAD_IMAGES:
      assert row['score'] == '' and re.search(bi.BAD_IMAGES[name][1], row['error']), row
    else:
      assert 0.0 <= float(row['score']) <= 1.0 and row['error'] == '', row


def _disk_full_checkpoint(ctx) -> bi.Run:
  bi.full_disk_at_checkpoint(ctx.monkeypatch, epoch=2)
  return bi.Run('train', {'data.run_folds': (0,), 'num_epochs': 2}, bi.workdir(ctx.tmp_path))


def _checkpoint_kept_then_resumed(ctx, run):
  ckpt_dir = os.path.join(run.workdir, 'fold_0', 'checkpoints')
  mngr = checkpointing.manager(ckpt_dir, read_only=True)
  first = mngr.latest_step()
  assert mngr.all_steps() == [first] and checkpointing.restore_meta(mngr, first)['epoch'] == 1
  mngr.close()
  ctx.monkeypatch.undo()  # space freed
  saved, real_save = [], checkpointing.save

  def save(mngr, step, *args):
    saved.append(step)
    real_save(mngr, step, *args)

  ctx.monkeypatch.setattr(checkpointing, 'save', save)
  summary = train.train_and_evaluate(bi.make_config(run.overrides), run.workdir)
  assert saved == [2 * first]  # resumed from the kept checkpoint: only epoch 2 ran
  mngr = checkpointing.manager(ckpt_dir, read_only=True)
  val = {s: checkpointing.restore_meta(mngr, s)['val']['spearman'] for s in (first, 2 * first)}
  mngr.close()
  assert summary['folds'][0]['checkpoint_step'] == max(val, key=val.get)  # the best by val
  assert not [n for n in os.listdir(ckpt_dir) if 'tmp' in n]


def _disk_full_store(ctx) -> bi.Run:
  bi.full_disk_at_store_write(ctx.monkeypatch, write=4)  # progress after the 2nd batch of 4
  return bi.folder(ctx.tmp_path, **{'extract.batch_size': 4})


def _store_kept_then_resumed(ctx, run):
  directory = run.overrides['data.features_dir']
  with pytest.raises(InputError, match=r"incomplete.*rows done \{'color_grid': 4\} of 8"):
    store.read_store(directory)
  ctx.monkeypatch.undo()  # space freed
  appended, real_append = [], store.StoreWriter.append

  def append(self, rows):
    appended.append(len(rows['color_grid']))
    real_append(self, rows)

  ctx.monkeypatch.setattr(store.StoreWriter, 'append', append)
  extract.extract(bi.make_config(run.overrides), run.workdir)
  assert appended == [4]  # resumed at row 4
  assert store.read_store(directory)[0].size == 8


def _disk_full_summary(ctx) -> bi.Run:
  """--mode=evaluate re-scores a copy of a trained workdir; writing summary.json fails."""
  overrides, trained_workdir = ctx.trained()
  shutil.copytree(trained_workdir, ctx.tmp_path / 'run')
  bi.full_disk_at_summary(ctx.monkeypatch)
  return bi.Run('evaluate', overrides, str(ctx.tmp_path / 'run'))


def _old_summary_kept(ctx, run):
  assert not [n for n in os.listdir(run.workdir) if n.startswith('.tmp_')]
  assert results.read_json(os.path.join(run.workdir, 'summary.json'))['mode'] == 'train'


CASES = {
  'unknown-config-key': Case(
    lambda ctx: bi.Run('train', {'no_such_key': 1}, bi.workdir(ctx.tmp_path)),
    expect=(r'^unknown config field --config\.no_such_key \(configs/default\.py lists every',),
    via_main=True,
  ),
  'unknown-feature': Case(
    lambda ctx: bi.Run('train', {'features': ('cnn', 'colour')}, bi.workdir(ctx.tmp_path)),
    expect=(r"config\.features=\('cnn', 'colour'\): expected features of the synthetic data",),
    via_main=True,
  ),
  'config-value-out-of-range': Case(
    lambda ctx: bi.Run('train', {'model.dropout': 1.5}, bi.workdir(ctx.tmp_path)),
    expect=(r'config\.model\.dropout=1\.5: expected a number in \[0\.0, 1\.0\)',),
    via_main=True,
  ),
  'missing-data-dir': Case(
    lambda ctx: bi.lamem(ctx.tmp_path, **{'data.dir': str(ctx.tmp_path / 'nowhere')}),
    expect=(r"config\.data\.dir='.*nowhere': expected the LaMem folder holding splits/",),
    via_main=True,
  ),
  'data-dir-is-a-file': Case(
    lambda ctx: bi.folder(ctx.tmp_path, mode='train', **{'data.dir': __file__}),
    expect=(r"config\.data\.dir='.*test_bad_input\.py': expected the folder of images",),
  ),
  'unreadable-split-file': Case(
    lambda ctx: bi.undecodable_split(ctx.tmp_path),
    expect=(r'cannot read LaMem split file .*val_2\.txt .*utf-8.*expected UTF-8 text',),
  ),
  'empty-split-file': Case(
    lambda ctx: bi.split(ctx.tmp_path, 'test_4.txt', lambda lines: []),
    expect=(r"test_4\.txt is empty; expected lines like '00051110\.jpg 0\.675000'",),
  ),
  'empty-scores-csv': Case(
    lambda ctx: bi.scores_csv(ctx.tmp_path, 'image,score\n'),
    expect=(r"scores\.csv has a header but no rows; expected one row per image with \['image',",),
  ),
  'malformed-split-line': Case(
    lambda ctx: bi.split(ctx.tmp_path, 'train_1.txt', lambda lines: lines + ['my_photo.jpg\n']),
    expect=(r"train_1\.txt line 41, column 2 \(score\): missing; .*, got 'my_photo\.jpg'",),
    via_main=True,
  ),
  'nan-score': Case(
    lambda ctx: bi.split(ctx.tmp_path, 'val_3.txt', bi.replace_score(2, 'nan')),
    expect=(r"val_3\.txt line 2: score 'nan' is outside \[0, 1\]",),
  ),
  'score-out-of-range': Case(
    lambda ctx: bi.scores_csv(ctx.tmp_path, 'image,score\n000.jpg,0.5\n001.jpg,1.5\n'),
    expect=(r"scores\.csv line 3: score '1\.5' is outside \[0, 1\]",),
  ),
  'duplicate-id': Case(
    lambda ctx: bi.split(ctx.tmp_path, 'test_1.txt', lambda lines: lines + [lines[0]]),
    expect=(r"test_1\.txt: image '\d{8}\.jpg' is listed twice, on lines 1 and 15",),
  ),
  'corrupt-image-extract-stop': Case(
    lambda ctx: bi.folder(ctx.tmp_path, bad=('broken.jpg',), **STOP),
    expect=(r'unreadable image\(s\): .*images/broken\.jpg', 'on_error=skip'),
    via_main=True,
    check=_failed_images_listed,
  ),
  'zero-byte-image-extract-stop': Case(
    lambda ctx: bi.folder(ctx.tmp_path, bad=('empty.jpg',), **STOP),
    expect=(r'unreadable image\(s\): .*images/empty\.jpg',),
    check=_failed_images_listed,
  ),
  'unsupported-format-extract-stop': Case(
    lambda ctx: bi.folder(ctx.tmp_path, bad=('notes.jpg',), **STOP),
    expect=(r'unreadable image\(s\): .*images/notes\.jpg',),
    check=_failed_images_listed,
  ),
  'bad-images-extract-skip': Case(
    lambda ctx: bi.folder(ctx.tmp_path, bad=tuple(bi.BAD_IMAGES)),
    fails=False,
    check=_skipped_images_listed,
  ),
  'bad-images-predict-stop': Case(
    lambda ctx: bi.predict_inputs(ctx.tmp_path, 'stop', ctx.trained()[1]),
    expect=(
      r'3 unreadable image\(s\): ',
      r'broken\.jpg \(truncated or corrupt JPEG data \(image file is truncated',
      r'empty\.jpg \(empty file \(0 bytes\)',
      r'notes\.jpg \(unsupported or corrupt image format',
      r'Nothing was written to .*predictions\.csv',
    ),
  ),
  'bad-images-predict-skip': Case(
    lambda ctx: bi.predict_inputs(ctx.tmp_path, 'skip', ctx.trained()[1]),
    fails=False,
    check=_predictions_list_errors,
  ),
  'store-mismatched-rows': Case(
    lambda ctx: bi.short_cnn_rows(ctx.tmp_path),
    expect=(r'features/cnn\.npy has 59 rows; expected 60, one per line of ids\.txt',),
  ),
  'disk-full-checkpoint': Case(
    _disk_full_checkpoint,
    expect=(
      rf'cannot write checkpoint .*/run/fold_0/checkpoints/\d+: {bi.NO_SPACE}',
      r'previous checkpoint \(step \d+\) is kept; free space and re-run to resume',
    ),
    check=_checkpoint_kept_then_resumed,
  ),
  'disk-full-store': Case(
    _disk_full_store,
    expect=(
      rf'cannot write feature store .*/store: {bi.NO_SPACE} \(.*progress\.json\)',
      r"rows done so far \(\{'color_grid': 4\}\) are kept; free space and re-run to resume",
    ),
    check=_store_kept_then_resumed,
  ),
  'disk-full-summary-json': Case(
    _disk_full_summary,
    expect=(rf'cannot write .*/run/summary\.json: {bi.NO_SPACE}', 'previous file is unchanged'),
    check=_old_summary_kept,
  ),
  'k-above-distinct-scores': Case(
    lambda ctx: bi.three_scores(ctx.tmp_path, num_classes=4),
    expect=(r'config\.num_classes=4 needs 4 non-empty score classes', r'only 3 distinct values'),
  ),
  'batch-not-divisible': Case(
    lambda ctx: bi.Run('train', {'batch_size': 6}, bi.workdir(ctx.tmp_path)),
    expect=(r'config\.batch_size=6 must be a positive multiple of the device count \(4 devices',),
  ),
  'extract-batch-not-divisible': Case(
    lambda ctx: bi.folder(ctx.tmp_path, **{'extract.batch_size': 6}),
    expect=(r'config\.extract\.batch_size=6 must be a positive multiple of the device count',),
  ),
}


def _snapshot(*roots) -> dict:
  """Bytes of every file under `roots` that makes something look finished."""
  found = {}
  for root in roots:
    for directory, _, names in os.walk(root):
      for name in set(names) & RESULT_FILES:
        found[os.path.join(directory, name)] = pathlib.Path(directory, name).read_bytes()
  return found


def _via_main(run: bi.Run) -> str:
  """Runs main.py; checks exit 2, one `memjax: error:` line and no traceback; returns the line."""
  flags = [
    f'--config.{k}={repr(v) if isinstance(v, tuple) else v}' for k, v in run.overrides.items()
  ]
  proc = subprocess.run(
    [sys.executable, 'main.py', '--config=configs/test.py', f'--workdir={run.workdir}']
    + [f'--mode={run.mode}', *flags],
    cwd=ROOT,
    capture_output=True,
    text=True,
    env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'},
    timeout=300,
  )
  lines = [line for line in proc.stderr.splitlines() if line.startswith('memjax: error: ')]
  assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
  assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
  return lines[0].removeprefix('memjax: error: ')


def _in_process(run: bi.Run, fails: bool) -> str | None:
  """Calls the mode's library function; returns its InputError's message when it must fail."""
  function, config = MODES[run.mode], bi.make_config(run.overrides)
  if not fails:
    function(config, run.workdir)
    return None
  with pytest.raises(InputError) as error:
    function(config, run.workdir)
  return str(error.value)


@pytest.mark.parametrize(
  'case',
  [
    pytest.param(c, id=k, marks=[pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else [])
    for k, c in CASES.items()
  ],
)
def test_bad_input(case, tmp_path, monkeypatch, request):
  ctx = Ctx(tmp_path, monkeypatch, request)
  run = case.build(ctx)
  before = _snapshot(tmp_path, run.workdir)
  message = _via_main(run) if case.via_main else _in_process(run, case.fails)
  if case.fails:
    assert '\n' not in message, message
    for pattern in case.expect:
      assert re.search(pattern, message), f'{pattern!r} not in {message!r}'
    assert _snapshot(tmp_path, run.workdir) == before  # nothing changed, nothing new complete
  if case.check:
    case.check(ctx, run)
