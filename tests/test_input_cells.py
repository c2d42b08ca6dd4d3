"""Inputs as users write them: an empty or missing cell in any user file is one InputError line
naming the file, the row and the column; predict's CSV has the same columns whatever the input,
and its relative paths are relative to the CSV's folder."""

import csv
import os

import ml_collections
import numpy as np
import pytest

from memjax import predict
from memjax.datasets import lamem, score_files
from memjax.errors import InputError
from memjax.features.store import spec


def _write(path, text: str) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w', encoding='utf-8', newline='') as f:
    f.write(text)
  return str(path)


def _one_line(error) -> str:
  message = str(error.value)
  assert '\n' not in message
  return message


@pytest.mark.parametrize(
  ('rows', 'line', 'column'),
  [
    ('a.jpg,0.5,train\n,0.4,train\n', 3, 'image'),
    ('a.jpg,0.5,train\n   ,0.4,train\n', 3, 'image'),
    ('a.jpg,,train\n', 2, 'score'),
    ('a.jpg, ,train\n', 2, 'score'),
    ('a.jpg,0.5,train\nb.jpg\n', 3, 'score'),  # a short row: the cells are missing
    ('a.jpg,0.5,train\nb.jpg,0.1\n', 3, 'split'),
    ('a.jpg,0.5,\n', 2, 'split'),
  ],
)
def test_scores_csv_names_the_empty_or_missing_cell(tmp_path, rows, line, column):
  path = _write(tmp_path / 'scores.csv', 'image,score,split\n' + rows)
  layout = score_files.CsvLayout(split_column='split')
  with pytest.raises(InputError) as error:
    score_files.read_score_csv(path, layout)
  message = _one_line(error)
  assert message.startswith(f'{path} line {line}, column {column!r}: ')
  assert 'empty' in message or 'missing' in message


def test_split_file_and_store_ids_name_the_empty_cell(tmp_path):
  split = _write(tmp_path / 'splits' / 'train_1.txt', '00000001.jpg 0.5\n00000002.jpg\n')
  with pytest.raises(InputError) as error:
    lamem.parse_split_file(split)
  assert _one_line(error).startswith(f'{split} line 2, column 2 (score): missing')
  ids = _write(tmp_path / 'store' / 'ids.txt', 'a.jpg\n\nb.jpg\n')
  with pytest.raises(InputError) as error:
    spec.read_ids(ids)
  assert _one_line(error).startswith(f'{ids} line 2 (the id): empty')
  ids = _write(tmp_path / 'store' / 'ids.txt', 'a.jpg\n  \nb.jpg\n')
  with pytest.raises(InputError, match=r'line 2 \(the id\): empty'):
    spec.read_ids(ids)


def _config(source, column='path'):
  return ml_collections.ConfigDict({'predict': {'input': str(source), 'path_column': column}})


@pytest.mark.parametrize(
  ('text', 'line', 'column', 'what'),
  [
    ('path\na.jpg\n""\n', 3, 'path', 'empty'),  # the crash (join() got None)
    ('path,note\na.jpg,x\n,y\n', 3, 'path', 'empty'),
    ('path,note\n  ,y\n', 2, 'path', 'empty'),
    ('id,path\n1,a.jpg\n2\n', 3, 'path', 'missing'),
    ('path\na\x00.jpg\n', 2, 'path', 'control characters'),
  ],
)
def test_predict_csv_names_the_empty_or_missing_cell(tmp_path, text, line, column, what):
  source = _write(tmp_path / 'list.csv', text)
  with pytest.raises(InputError) as error:
    predict.list_inputs(_config(source))
  message = _one_line(error)
  assert message.startswith(f'{source} line {line}, column {column!r}: ') and what in message


def test_predict_csv_paths_are_relative_to_the_csv_folder(tmp_path, monkeypatch):
  elsewhere = tmp_path / 'elsewhere'
  elsewhere.mkdir()
  monkeypatch.chdir(elsewhere)  # not the CSV's folder: the working directory plays no part
  absolute = str(tmp_path / 'abs' / 'c.jpg')
  source = _write(tmp_path / 'lists' / 'in.csv', f'path\na.jpg\nsub/b.jpg\n../up.jpg\n{absolute}\n')
  paths = predict.list_inputs(_config(os.path.relpath(source)))
  lists = str(tmp_path / 'lists')
  assert [os.path.normpath(p) for p in paths] == [
    os.path.join(lists, 'a.jpg'),
    os.path.join(lists, 'sub', 'b.jpg'),
    str(tmp_path / 'up.jpg'),
    absolute,
  ]
  header_only = _write(tmp_path / 'lists' / 'empty.csv', 'path\n')
  assert predict.list_inputs(_config(header_only)) == []


def _header(path):
  with open(path, newline='') as f:
    return next(csv.reader(f))


def test_predict_output_has_the_same_columns_whatever_the_input(tmp_path):
  """A header-only input gives the columns of a normal run, K from the model (num_classes)."""
  full, empty = str(tmp_path / 'full.csv'), str(tmp_path / 'empty.csv')
  probs = np.full((2, 4), 0.25)
  predict.write_csv(full, ['a', 'b'], np.array([0.5, np.nan]), probs, ['', 'bad'], num_classes=4)
  predict.write_csv(empty, [], np.zeros(0), None, [], num_classes=4)
  expected = ['path', 'score', 'prob_0', 'prob_1', 'prob_2', 'prob_3', 'error']
  assert _header(full) == _header(empty) == expected
  with open(full, newline='') as f:
    rows = list(csv.reader(f))[1:]
  assert rows == [['a', '0.500000'] + ['0.250000'] * 4 + [''], ['b', ''] + [''] * 4 + ['bad']]
  regression = str(tmp_path / 'regression.csv')
  predict.write_csv(regression, [], np.zeros(0), None, [], num_classes=0)
  assert _header(regression) == ['path', 'score', 'error']
  with pytest.raises(ValueError, match='num_classes'):
    predict.write_csv(full, ['a'], np.zeros(1), np.zeros((1, 3)), [''], num_classes=4)


def test_a_missing_column_is_named_as_the_config_field(tmp_path, test_config):
  from memjax.datasets import image_folder

  (tmp_path / 'scores.csv').write_text('file,score\na.jpg,0.5\n')
  config = test_config
  config.data.name, config.data.dir = 'image_folder', str(tmp_path)
  with pytest.raises(InputError, match=r"'image' \(config\.data\.image_column\)"):
    image_folder.read_scores(config)
