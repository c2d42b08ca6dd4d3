"""TFDS builders for LaMem and for image folders with a scores CSV, built offline from tmp files."""

import os
import tarfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from memjax.datasets import score_files, tfds_image_folder, tfds_lamem
from memjax.errors import InputError

NUM_IMAGES = 36  # per split k: 24 train, 4 val, 8 test


def _jpeg(path, seed):
  pixels = np.random.default_rng(seed).integers(0, 256, (6, 10, 3), dtype=np.uint8)
  Image.fromarray(pixels).save(path, quality=95)


def _fake_lamem(root):
  """A LaMem folder in the official layout: each split k has its own random split and scores."""
  os.makedirs(os.path.join(root, 'images'))
  os.makedirs(os.path.join(root, 'splits'))
  ids = [f'{i:08d}.jpg' for i in range(1, NUM_IMAGES + 1)]
  for i, image_id in enumerate(ids):
    _jpeg(os.path.join(root, 'images', image_id), i)
  rng = np.random.default_rng(0)
  expected = {}
  for k in range(1, 6):
    order = rng.permutation(ids)
    for kind, part in (('train', order[:24]), ('val', order[24:28]), ('test', order[28:])):
      rows = [(str(i), round(float(rng.uniform(0.2, 1.0)), 6)) for i in part]
      with open(os.path.join(root, 'splits', f'{kind}_{k}.txt'), 'w') as f:
        f.writelines(f'{i} {s:.6f}\n' for i, s in rows)
      expected[f'{kind}_{k}'] = rows
  return expected


@pytest.fixture(scope='module')
def lamem(tmp_path_factory):
  """(manual dir with the extracted folder under lamem/, one with a top-level tar.gz, expected)."""
  base = tmp_path_factory.mktemp('lamem')
  folder = base / 'manual_folder'
  expected = _fake_lamem(str(folder / 'lamem'))
  archive_dir = base / 'manual_archive'
  archive_dir.mkdir()
  with tarfile.open(archive_dir / 'lamem.tar.gz', 'w:gz') as tar:  # images/ and splits/ at top
    tar.add(folder / 'lamem' / 'images', 'images')
    tar.add(folder / 'lamem' / 'splits', 'splits')
  return folder, archive_dir, expected


def _build(builder, manual_dir):
  tfds.disable_progress_bar()
  builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir), try_download_gcs=False)
  )
  return builder


def _examples(builder, split, decode=True):
  """(id, score, image) per example; image as encoded bytes unless `decode`."""
  decoders = None if decode else {'image': tfds.decode.SkipDecoding()}
  dataset = builder.as_dataset(split=split, decoders=decoders)
  return [(ex['id'].decode(), float(ex['score']), ex['image']) for ex in tfds.as_numpy(dataset)]


@pytest.mark.parametrize('layout', ['folder', 'tar.gz'])
def test_lamem_builds_every_split_with_its_own_scores(lamem, tmp_path, layout):
  folder, archive_dir, expected = lamem
  manual = folder if layout == 'folder' else archive_dir
  builder = _build(tfds_lamem.Lamem(data_dir=str(tmp_path / 'tfds')), manual)
  assert list(builder.info.splits) == list(tfds_lamem.SPLIT_NAMES)
  read = {name: _examples(builder, name, decode=False) for name in tfds_lamem.SPLIT_NAMES}
  for name, examples in read.items():
    assert builder.info.splits[name].num_examples == len(expected[name])
    assert [e[0] for e in examples] == [i for i, _ in expected[name]]  # split-file order
    np.testing.assert_allclose([e[1] for e in examples], [s for _, s in expected[name]], rtol=1e-6)
  # The same image carries each split's own score.
  image_id = expected['test_1'][0][0]
  scores = {n: s for n, examples in read.items() for i, s, _ in examples if i == image_id}
  assert len(scores) == 5 and len(set(scores.values())) > 1
  # Each k's train + val + test cover every image once.
  ids = [e[0] for name in ('train_2', 'val_2', 'test_2') for e in read[name]]
  assert sorted(ids) == [f'{i:08d}.jpg' for i in range(1, NUM_IMAGES + 1)]
  # Images are stored as the original JPEG bytes.
  for image_id, _, encoded in read['val_1']:
    assert encoded == (folder / 'lamem' / 'images' / image_id).read_bytes()
  assert _examples(builder, 'val_1')[0][2].shape == (6, 10, 3)


def test_lamem_split_file_errors(tmp_path):
  path = tmp_path / 'train_1.txt'
  cases = [
    ('00000001.jpg 0.5\n00000002.jpg\n', r'line 2, column 2 \(score\): missing'),
    ('00000001.jpg 0.5 extra\n', r"line 1: expected '<image file> <score>'"),
    ('00000001.jpg high\n', r"line 1: score 'high' is not a number"),
    ('00000001.jpg 0.5\n00000002.jpg 1.2\n', r"line 2: score '1.2' is outside \[0, 1\]"),
    ('00000001.jpg nan\n', r"line 1: score 'nan' is outside \[0, 1\]"),
    ('a.jpg 0.5\nb.jpg 0.6\na.jpg 0.7\n', r"image 'a.jpg' is listed twice, on lines 1 and 3"),
    ('../a.jpg 0.5\n', r'line 1: expected an image path relative to the image folder'),
    ('\n\n', r'is empty'),
  ]
  for text, message in cases:
    path.write_text(text)
    with pytest.raises(InputError, match=message):
      tfds_lamem.parse_split_file(str(path))
  path.write_text('00000001.jpg 0.5\r\n\r\n00000002.jpg 0.25\r\n')  # CRLF and blank lines
  assert tfds_lamem.parse_split_file(str(path)) == [
    ('00000001.jpg', 0.5, 1),
    ('00000002.jpg', 0.25, 3),
  ]
  with pytest.raises(InputError, match=r'split file .*nope.txt is missing'):
    tfds_lamem.parse_split_file(str(tmp_path / 'nope.txt'))


def test_lamem_missing_files_and_folders(tmp_path):
  root = tmp_path / 'lamem'
  _fake_lamem(str(root))
  os.remove(root / 'splits' / 'val_4.txt')
  with pytest.raises(InputError, match=r'1 of 15 split files missing: \[.*val_4.txt'):
    tfds_lamem.read_splits(str(root))
  (root / 'splits' / 'val_4.txt').write_text('00000001.jpg 0.5\n')
  os.remove(root / 'images' / '00000007.jpg')
  with pytest.raises(InputError, match=r'1 of 36 image file\(s\) missing under .*00000007.jpg'):
    tfds_lamem.read_splits(str(root))
  empty = tmp_path / 'empty'
  empty.mkdir()
  (empty / 'readme.txt').write_text('nothing here')
  with pytest.raises(InputError, match='holds neither a splits/ folder .* nor lamem.tar.gz'):
    tfds_lamem.find_root(str(empty), extract=None)
  # Through TFDS: an empty manual_dir, then a bad line, each surface as InputError.
  with pytest.raises(InputError, match='does not exist or is empty'):
    _build(tfds_lamem.Lamem(data_dir=str(tmp_path / 'tfds')), tmp_path / 'no_manual')
  (root / 'splits' / 'test_2.txt').write_text('00000001.jpg 0.5\n00000002.jpg -0.1\n')
  with pytest.raises(InputError, match=r'test_2.txt line 2: score .* outside'):
    _build(tfds_lamem.Lamem(data_dir=str(tmp_path / 'tfds')), tmp_path)


def _image_folder(root):
  """A scores CSV with custom column names, a split column, nested paths and one GIF image."""
  os.makedirs(root / 'pics' / 'street')
  rows = [
    ('street/a.jpg', '0.71', 'train'),
    ('b.png', '0.2', 'train'),
    ('street/c.gif', '1', 'test'),
    ('b.png', '0.9', 'test'),  # the same image may be in several splits
  ]
  for i, (rel, _, _) in enumerate(rows[:3]):
    pixels = np.random.default_rng(i).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / 'pics' / rel)
  with open(root / 'labels.csv', 'w', newline='') as f:
    f.write('filename,memorability,subset\n')
    f.writelines(f'{r},{s},{p}\n' for r, s, p in rows)
  return tfds_image_folder.ScoredImageFolderConfig(
    name='custom',
    csv_file='labels.csv',
    image_dir='pics',
    image_column='filename',
    score_column='memorability',
    split_column='subset',
  )


def test_image_folder_builder(tmp_path):
  config = _image_folder(tmp_path / 'manual')
  builder = tfds_image_folder.ScoredImageFolder(config=config, data_dir=str(tmp_path / 'tfds'))
  _build(builder, tmp_path / 'manual')
  assert sorted(builder.info.splits) == ['test', 'train']
  train, test = _examples(builder, 'train'), _examples(builder, 'test')
  assert [(i, round(s, 6)) for i, s, _ in train] == [('street/a.jpg', 0.71), ('b.png', 0.2)]
  assert [(i, round(s, 6)) for i, s, _ in test] == [('street/c.gif', 1.0), ('b.png', 0.9)]
  with Image.open(tmp_path / 'manual' / 'pics' / 'street' / 'c.gif') as gif:
    np.testing.assert_array_equal(test[0][2], np.asarray(gif.convert('RGB')))
  assert test[1][2].shape == (5, 7, 3)
  # The default config: scores.csv with columns image, score, everything in `train`.
  (tmp_path / 'manual' / 'scores.csv').write_text('image,score\npics/b.png,0.5\n')
  default = tfds_image_folder.ScoredImageFolder(data_dir=str(tmp_path / 'tfds'))
  _build(default, tmp_path / 'manual')
  assert [(i, s) for i, s, _ in _examples(default, 'train')] == [('pics/b.png', 0.5)]


def test_image_folder_errors(tmp_path):
  config = _image_folder(tmp_path)
  csv_path = tmp_path / 'labels.csv'

  def read(text):
    csv_path.write_text(text)
    return score_files.read_score_csv(str(csv_path), config)

  with pytest.raises(
    InputError,
    match=r"missing column\(s\) 'memorability' \(score_column\); the header has \['filename', 'sc",
  ):
    read('filename,score,subset\na.jpg,0.5,train\n')
  with pytest.raises(InputError, match=r"labels.csv line 3: score 'n/a' is not a number"):
    read('filename,memorability,subset\na.jpg,0.5,train\nb.jpg,n/a,train\n')
  with pytest.raises(InputError, match=r"labels.csv line 2, column 'memorability': empty"):
    read('filename,memorability,subset\na.jpg,,train\n')
  with pytest.raises(InputError, match=r"labels.csv line 2: score '75' is outside \[0, 1\]"):
    read('filename,memorability,subset\na.jpg,75,train\n')
  with pytest.raises(InputError, match=r"image 'a.jpg' is listed twice, on lines 2 and 3"):
    read('filename,memorability,subset\na.jpg,0.5,train\n./a.jpg,0.6,train\n')
  with pytest.raises(InputError, match=r"line 2: split 'my split' must be letters"):
    read('filename,memorability,subset\na.jpg,0.5,my split\n')
  with pytest.raises(InputError, match=r'line 2: expected an image path relative'):
    read('filename,memorability,subset\n/etc/a.jpg,0.5,train\n')
  with pytest.raises(InputError, match='has a header but no rows'):
    read('filename,memorability,subset\n')
  with pytest.raises(InputError, match='is empty; expected a header row'):
    read('')
  with pytest.raises(InputError, match=r'scores CSV .*absent.csv not found'):
    score_files.read_score_csv(str(tmp_path / 'absent.csv'), config)
  origins = {f'x{i}.jpg': f'labels.csv line {i + 2}' for i in range(8)}
  with pytest.raises(
    InputError, match=r'8 of 8 image file\(s\) missing under .*first: x0.jpg \(labels.csv line 2\);'
  ) as error:
    score_files.check_images_exist(str(tmp_path), origins)
  assert 'x4.jpg' in str(error.value) and 'x5.jpg' not in str(error.value)  # the first five
  # Through TFDS: a CSV naming an image that is not there.
  read('filename,memorability,subset\nstreet/a.jpg,0.5,train\nghost.jpg,0.5,test\n')
  builder = tfds_image_folder.ScoredImageFolder(config=config, data_dir=str(tmp_path / 'tfds'))
  with pytest.raises(
    InputError, match=r'1 of 2 image file\(s\) missing .*ghost.jpg \(labels.csv line 3\)'
  ):
    _build(builder, tmp_path)
