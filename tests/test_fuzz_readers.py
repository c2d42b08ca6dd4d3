"""A fuzz pass over the readers of user files: only InputError may come out, never another
exception or a hang.

Property-based (`hypothesis`): each reader gets random bytes, and valid files mutated the ways
files really break (truncated, bytes flipped, NUL or invalid UTF-8 inserted, huge numbers,
NaN/inf, duplicated lines, a BOM, CRLF or CR line ends, deep JSON nesting, fields replaced by
other JSON). A reader must either return well-formed results or raise `InputError`. The runs are
reproducible (`derandomize=True`, no example database) and bounded (`max_examples`, and a
`deadline` per example that a hang would exceed).
"""

import json
import os
import re

import ml_collections
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from memjax import predict
from memjax.datasets import lamem, score_files
from memjax.errors import InputError
from memjax.features import store
from memjax.features.store import spec

FUZZ = settings(
  max_examples=150,
  deadline=5000,  # ms; generous for a loaded CI machine, finite for a hang
  derandomize=True,
  database=None,
  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

TOKENS = [
  b'\x00',
  b'\xff',
  b'\xfe\xff',
  b'\xc3\x28',  # invalid UTF-8
  b'\xed\xa0\x80',  # an encoded surrogate, invalid UTF-8
  b'\xef\xbb\xbf',  # a BOM in the middle
  b'\r\n',
  b'\r',
  b'\n',
  b'\n\n',
  b' ',
  b'\t',
  b',',
  b'"',
  b'nan',
  b'NaN',
  b'inf',
  b'-inf',
  b'Infinity',
  b'1e999',
  b'-1e999',
  b'9' * 400,
  b'9' * 5000,
  b'1_0',
  b'0x10',
  b'-0',
  b'..',
  b'../',
  b'/',
  b'\\',
  b'\xe2\x80\xa8',  # U+2028, a line separator to str.splitlines
  b'\xc2\x85',  # U+0085 (NEL)
  b'\x1e',
  b'{',
  b'}',
  b'[',
  b']',
  b'null',
  b'true',
  b'[' * 3000,  # deep nesting for a JSON parser
  b'{"a":' * 2000,
]
NUMBER = re.compile(rb'-?\d+(\.\d+)?(e[-+]?\d+)?')


@st.composite
def mutated(draw, seed: bytes) -> bytes:
  """`seed` after 1-4 mutations."""
  data = seed
  for _ in range(draw(st.integers(1, 4))):
    op = draw(
      st.sampled_from(
        ['truncate', 'flip', 'insert', 'delete', 'dup_line', 'bom', 'crlf', 'cr', 'number']
      )
    )
    pos = draw(st.integers(0, max(0, len(data))))
    if op == 'truncate':
      data = data[:pos]
    elif op == 'flip' and data:
      i = min(pos, len(data) - 1)
      data = data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1 :]
    elif op == 'insert':
      data = data[:pos] + draw(st.sampled_from(TOKENS)) + data[pos:]
    elif op == 'delete':
      data = data[:pos] + data[pos + draw(st.integers(1, 20)) :]
    elif op == 'dup_line':
      lines = data.split(b'\n')
      i = min(pos, len(lines) - 1)
      data = b'\n'.join(lines[: i + 1] + lines[i:])
    elif op == 'bom':
      data = b'\xef\xbb\xbf' + data
    elif op == 'crlf':
      data = data.replace(b'\n', b'\r\n')
    elif op == 'cr':
      data = data.replace(b'\n', b'\r')
    elif op == 'number':
      numbers = list(NUMBER.finditer(data))
      if numbers:
        m = numbers[min(pos, len(numbers) - 1)]
        token = draw(st.sampled_from([b'nan', b'inf', b'-inf', b'1e999', b'9' * 400, b'-1', b'']))
        data = data[: m.start()] + token + data[m.end() :]
  return data


def inputs(seed: bytes):
  """Random bytes, random text, or `seed` mutated."""
  return st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda t: t.encode('utf-8', 'surrogatepass')),
    mutated(seed),
    mutated(seed),
  )


def _write(directory, name: str, data: bytes) -> str:
  path = os.path.join(directory, name)
  with open(path, 'wb') as f:
    f.write(data)
  return path


# --- LaMem split files ------------------------------------------------------------------------

SPLIT = b''.join(b'%08d.jpg %.6f\n' % (i, 0.5 + i / 100) for i in range(1, 8))


@FUZZ
@given(data=inputs(SPLIT))
@example(data=b'\x00\x1f0')  # found: the image id '\x00'
@example(data=b'\xef\xbb\xbf' + SPLIT)  # found: the BOM became part of the first id
def test_split_file_reader(tmp_path, data):
  path = _write(tmp_path, 'train_1.txt', data)
  try:
    entries = lamem.parse_split_file(path)
  except InputError:
    return
  assert entries
  ids = [e[0] for e in entries]
  assert len(set(ids)) == len(ids)
  for image_id, score, line in entries:
    assert isinstance(image_id, str) and image_id and '\x00' not in image_id
    assert not image_id.startswith(('/', '../')) and not image_id.startswith('\ufeff')
    assert 0.0 <= score <= 1.0 and isinstance(line, int) and line >= 1


def test_split_file_reader_accepts_bom_and_crlf(tmp_path):
  path = _write(tmp_path, 'a.txt', b'\xef\xbb\xbf' + SPLIT.replace(b'\n', b'\r\n'))
  assert [e[0] for e in lamem.parse_split_file(path)][:2] == ['00000001.jpg', '00000002.jpg']


# --- scores CSVs --------------------------------------------------------------------------------

CSV = b'image,score,split\n' + b''.join(
  b'dir/%03d.jpg,%.3f,%s\n' % (i, i / 10, b'train' if i % 3 else b'test') for i in range(8)
)
LAYOUTS = [score_files.CsvLayout(), score_files.CsvLayout(split_column='split')]


@FUZZ
@given(data=inputs(CSV), layout=st.sampled_from(LAYOUTS))
def test_score_csv_reader(tmp_path, data, layout):
  path = _write(tmp_path, 'scores.csv', data)
  try:
    splits = score_files.read_score_csv(path, layout)
  except InputError:
    return
  assert splits
  for name, rows in splits.items():
    assert re.fullmatch(r'[A-Za-z][A-Za-z0-9_]*', name)
    assert len({r[0] for r in rows}) == len(rows)
    for image_id, score, line in rows:
      assert image_id and '\x00' not in image_id and not image_id.startswith(('/', '../'))
      assert 0.0 <= score <= 1.0 and line >= 1


# --- predict CSVs --------------------------------------------------------------------------------

PREDICT_CSV = b'path,note\n' + b''.join(b'dir/%03d.jpg,n%d\n' % (i, i) for i in range(6))


@FUZZ
@given(data=inputs(PREDICT_CSV), column=st.sampled_from(['path', 'note']))
@example(data=b'path\n""\n', column='path')  # found: an empty cell crashed os.path.join
@example(data=b'note,path\nx\n', column='path')  # a short row: the cell is None
def test_predict_csv_reader(tmp_path, data, column):
  path = _write(tmp_path, 'list.csv', data)
  config = ml_collections.ConfigDict({'predict': {'input': path, 'path_column': column}})
  try:
    paths = predict.list_inputs(config)
  except InputError:
    return
  line_ends = data.count(b'\n') + data.count(b'\r')
  assert len(paths) <= line_ends  # at most one row per line end, after the header
  for image in paths:
    assert isinstance(image, str) and os.path.isabs(image) and image.strip('/') != ''
    assert not score_files.has_control_characters(image)


# --- feature stores: ids.txt, metadata.json, and a whole store ---------------------------------

IDS = b''.join(b'%08d.jpg\n' % i for i in range(1, 6))


@FUZZ
@given(data=inputs(IDS))
@example(data=b'\xef\xbb\xbf' + IDS)  # found: the BOM became part of the first id
@example(data=IDS.replace(b'2.jpg', b'2.jpg\x00'))  # found: a NUL inside an id
def test_ids_reader(tmp_path, data):
  path = _write(tmp_path, 'ids.txt', data)
  try:
    ids = spec.read_ids(path)
  except InputError:
    return
  assert ids and len(set(ids)) == len(ids)
  for image_id in ids:
    assert image_id and image_id.strip() == image_id
    assert not set(image_id) & {'\x00', '\r', '\n', '\ufeff'}


def _meta(count=5) -> dict:
  descriptor = {
    'dim': 3,
    'dtype': 'float32',
    'extractor': 'test',
    'weights_sha256': 'ab' * 32,
    'input_size': [224, 224],
    'preprocessing': 'none',
  }
  return {'format_version': 1, 'count': count, 'source': 'fuzz', 'features': {'cnn': descriptor}}


META = json.dumps(_meta(), indent=2).encode()
JSON = st.recursive(
  st.none()
  | st.booleans()
  | st.integers(-(2**70), 2**70)
  | st.floats(allow_nan=True, allow_infinity=True)
  | st.text(max_size=12),
  lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children),
  max_leaves=8,
)
FIELDS = [
  ('format_version',),
  ('count',),
  ('features',),
  ('features', 'cnn'),
  ('features', 'cnn', 'dim'),
  ('features', 'cnn', 'dtype'),
  ('features', 'cnn', 'extractor'),
  ('features', 'cnn', 'weights_sha256'),
  ('features', 'cnn', 'input_size'),
]
NAMES = ['', '../cnn', '/etc/passwd', 'a/b', '.hidden', 'x' * 300, 'cnn\x00', ' cnn', 'ok_name']


@st.composite
def metadata_bytes(draw) -> bytes:
  """metadata.json with one field replaced by random JSON, or a feature renamed, or mutated."""
  kind = draw(st.sampled_from(['field', 'name', 'bytes']))
  if kind == 'bytes':
    return draw(inputs(META))
  meta = _meta()
  if kind == 'field':
    *parents, leaf = draw(st.sampled_from(FIELDS))
    node = meta
    for p in parents:
      node = node[p]
    node[leaf] = draw(JSON)
  else:
    meta['features'] = {draw(st.sampled_from(NAMES)): meta['features']['cnn']}
  return json.dumps(meta).encode()


@FUZZ
@given(data=metadata_bytes())
@example(data=b'[' * 3000)  # found: a RecursionError escaped
@example(data=META.replace(b'"cnn"', b'"../../etc/cnn"'))  # found: a name leaving the store
@example(data=META.replace(b'"count": 5', b'"count": true'))  # found: a bool taken for an int
@example(data=META.replace(b'"dim": 3', b'"dim": -3'))
def test_metadata_reader(tmp_path, data):
  _write(tmp_path, 'metadata.json', data)
  try:
    meta = spec.read_metadata(str(tmp_path))
  except InputError:
    return
  assert type(meta['count']) is int and meta['count'] >= 1
  for name, entry in meta['features'].items():
    assert spec.NAME_PATTERN.fullmatch(name)
    assert type(entry['dim']) is int and entry['dim'] >= 1
    assert entry['dtype'] in spec.DTYPES


@pytest.fixture(scope='module')
def good_store(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp('fuzz') / 'store')
  ids = [f'{i:08d}.jpg' for i in range(1, 6)]
  meta = {'features': {'cnn': {k: v for k, v in _meta()['features']['cnn'].items()}}}
  store.write_store(directory, ids, {'cnn': np.arange(15, dtype=np.float32).reshape(5, 3)}, meta)
  with open(os.path.join(directory, 'metadata.json'), 'rb') as f:
    metadata = f.read()
  return directory, metadata


@FUZZ
@given(which=st.sampled_from(['metadata.json', 'ids.txt']), meta=metadata_bytes(), ids=inputs(IDS))
def test_whole_store_with_a_damaged_metadata_or_ids_file(good_store, which, meta, ids):
  directory, metadata = good_store
  _write(directory, 'ids.txt', IDS)
  _write(directory, 'metadata.json', metadata)
  _write(directory, which, meta if which == 'metadata.json' else ids)
  try:
    read_ids, features, read_meta = store.read_store(directory)
  except InputError:
    return
  assert len(read_ids) == read_meta['count'] and set(features) == set(read_meta['features'])
  np.testing.assert_array_equal(features['cnn'], np.arange(15).reshape(5, 3))
