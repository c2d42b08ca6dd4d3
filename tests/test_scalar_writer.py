"""memjax.runtime.scalar_writer: TensorBoard event files without TensorFlow, read back by
tensorboard's EventAccumulator and compared with what clu's writer (through TensorFlow) writes."""

import os
import subprocess
import sys

import numpy as np
import pytest
from absl import logging
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util

from memjax.runtime import scalar_writer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(logdir: str) -> event_accumulator.EventAccumulator:
  acc = event_accumulator.EventAccumulator(logdir, size_guidance={event_accumulator.TENSORS: 0})
  acc.Reload()
  return acc


def _values(acc, tag: str) -> list[tuple[int, float]]:
  return [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]


def test_scalars_read_back(tmp_path):
  writer = scalar_writer.create_writer(str(tmp_path / 'fold_0'))
  writer.write_scalars(5, {'train_loss': 1.25, 'val_spearman': 0.5})
  writer.write_scalars(10, {'train_loss': np.float32(0.75), 'val_spearman': 0.625})
  writer.flush()
  acc = _read(str(tmp_path / 'fold_0'))
  assert sorted(acc.Tags()['tensors']) == ['train_loss', 'val_spearman']
  assert _values(acc, 'train_loss') == [(5, 1.25), (10, 0.75)]
  assert _values(acc, 'val_spearman') == [(5, 0.5), (10, 0.625)]
  assert acc.SummaryMetadata('train_loss').plugin_data.plugin_name == 'scalars'
  writer.write_scalars(15, {'train_loss': 0.5})
  writer.close()
  writer.write_scalars(20, {'train_loss': 0.25})  # after close: logged only
  assert _values(_read(str(tmp_path / 'fold_0')), 'train_loss')[-1] == (15, 0.5)
  assert os.path.basename(writer.path).startswith('events.out.tfevents.')


def test_just_logging_writes_no_file_and_logs_clu_lines(tmp_path, monkeypatch):
  """The scalars' line is a debug line (`--verbose` shows it; the epoch line says enough)."""
  lines = []
  monkeypatch.setattr(logging, 'debug', lambda fmt, *args: lines.append(fmt % args))
  writer = scalar_writer.create_writer(str(tmp_path / 'other'), just_logging=True)
  writer.write_scalars(3, {'b': 2, 'a': 0.1234567})
  writer.flush()
  writer.close()
  assert lines == ['[3] a=0.123457, b=2']
  assert not (tmp_path / 'other').exists()


def test_two_writers_get_two_files(tmp_path):
  first = scalar_writer.create_writer(str(tmp_path))
  second = scalar_writer.create_writer(str(tmp_path))
  assert first.path != second.path and len(os.listdir(tmp_path)) == 2
  first.close()
  second.close()


def test_importing_it_imports_no_tensorflow():
  code = (
    'import sys; from memjax.runtime import scalar_writer; '
    "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'"
  )
  proc = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr[-2000:]


def test_same_events_as_clu(tmp_path):
  """The same scalars through clu's TensorFlow writer read back identically."""
  metric_writers = pytest.importorskip('clu.metric_writers')
  scalars = {'train_loss': 0.75, 'steps_per_sec': 12.5}
  clu_writer = metric_writers.create_default_writer(str(tmp_path / 'clu'), asynchronous=False)
  ours = scalar_writer.create_writer(str(tmp_path / 'ours'))
  for writer in (clu_writer, ours):
    writer.write_scalars(7, scalars)
    writer.close()
  theirs, mine = _read(str(tmp_path / 'clu')), _read(str(tmp_path / 'ours'))
  assert sorted(theirs.Tags()['tensors']) == sorted(mine.Tags()['tensors'])
  for tag in scalars:
    assert _values(theirs, tag) == _values(mine, tag) == [(7, scalars[tag])]
    assert theirs.Tensors(tag)[0].tensor_proto.dtype == mine.Tensors(tag)[0].tensor_proto.dtype
    plugin = theirs.SummaryMetadata(tag).plugin_data.plugin_name
    assert plugin == mine.SummaryMetadata(tag).plugin_data.plugin_name == 'scalars'
