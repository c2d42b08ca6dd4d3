"""TFDS builder for LaMem (Khosla et al., ICCV 2015), read from a local copy in `manual_dir`.

It yields `image`, `id` (the file name, e.g. `00051110.jpg`) and `score` (float32) for each of the
15 official split files, as TFDS splits `train_1`, `val_1`, `test_1`, ..., `test_5`, each with
its own file's scores (the same image has different scores in different splits). Examples keep
the order of their split file. Each split k's train + val + test partition all 58,741 images, so
`train_1 + val_1 + test_1` visits every image once (the right input for feature extraction).
Images are stored once per split they appear in, i.e. five times in all.

Build, offline, from the repository root (with apache_beam installed, which TFDS 4.9.10's `tfds`
script imports, `PYTHONPATH=. tfds build memjax/datasets/tfds_lamem.py` takes the same flags)::

  python -m memjax.datasets.tfds_lamem --manual_dir=/data/lamem_manual \\
    --data_dir=/data/tensorflow_datasets

or from Python::

  builder = tfds_lamem.Lamem(data_dir='/data/tensorflow_datasets')
  builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(manual_dir='/data/lamem_manual'))
  ds = builder.as_dataset(split='train_1')
"""

import os

import tensorflow_datasets as tfds

from memjax.datasets import score_files, tfds_common
from memjax.datasets.lamem import KINDS as SPLIT_KINDS
from memjax.datasets.lamem import NUM_SPLITS, parse_split_file
from memjax.errors import InputError

SPLIT_NAMES = tuple(f'{kind}_{k}' for k in range(1, NUM_SPLITS + 1) for kind in SPLIT_KINDS)
ARCHIVE_SUFFIXES = ('.tar.gz', '.tgz', '.tar')

_INSTRUCTIONS = """\
Download LaMem (`lamem.tar.gz`, from http://memorability.csail.mit.edu) and place in `manual_dir`
either the archive itself:

  <manual_dir>/lamem.tar.gz      (extracted once into the TFDS download folder)

or its extracted folder, directly or under `lamem/`:

  <manual_dir>/lamem/images/00000001.jpg ... 00058741.jpg
  <manual_dir>/lamem/splits/{train,val,test}_{1..5}.txt

Each split file has one line per image: `<image file> <score>`, e.g. `00051110.jpg 0.675000`.
"""

_CITATION = """\
@inproceedings{khosla2015understanding,
  title={Understanding and Predicting Image Memorability at a Large Scale},
  author={Khosla, Aditya and Raju, Akhil S. and Torralba, Antonio and Oliva, Aude},
  booktitle={International Conference on Computer Vision (ICCV)},
  year={2015}
}"""


def _root_in(directory: str) -> str | None:
  """`directory`, its `lamem/`, or its only subfolder: the first holding `splits/`."""
  candidates = [directory, os.path.join(directory, 'lamem')]
  subdirs = [e.path for e in os.scandir(directory) if e.is_dir()]
  if len(subdirs) == 1:
    candidates.append(subdirs[0])
  return next((c for c in candidates if os.path.isdir(os.path.join(c, 'splits'))), None)


def find_root(manual_dir: str, extract) -> str:
  """The LaMem folder (with `images/` and `splits/`) in `manual_dir`, extracting an archive.

  Args:
    manual_dir: the TFDS manual folder.
    extract: path -> extracted folder (the download manager's `extract`).

  Returns:
    The folder holding `splits/` (and, once checked, `images/`).

  Raises:
    InputError: no extracted folder and no archive, or an archive without `splits/`.
  """
  root = _root_in(manual_dir)
  if root is not None:
    return root
  archives = sorted(n for n in os.listdir(manual_dir) if n.endswith(ARCHIVE_SUFFIXES))
  if not archives:
    raise InputError(
      f'LaMem: {manual_dir} holds neither a splits/ folder (directly or under lamem/) nor '
      f'lamem.tar.gz.\n{_INSTRUCTIONS}'
    )
  archive = os.path.join(manual_dir, 'lamem.tar.gz' if 'lamem.tar.gz' in archives else archives[0])
  root = _root_in(os.fspath(extract(archive)))
  if root is None:
    raise InputError(f'LaMem: {archive} has no splits/ folder (at its top or in one subfolder).')
  return root


def read_splits(root: str) -> dict[str, list[tuple[str, float, int]]]:
  """Parses all 15 split files of the LaMem folder `root` and checks the images exist.

  Raises:
    InputError: a missing split file or image, or any bad line (see `parse_split_file`).
  """
  paths = {name: os.path.join(root, 'splits', f'{name}.txt') for name in SPLIT_NAMES}
  missing = [p for p in paths.values() if not os.path.isfile(p)]
  if missing:
    raise InputError(f'LaMem: {len(missing)} of 15 split files missing: {missing}.')
  splits = {name: parse_split_file(path) for name, path in paths.items()}
  origins = {}
  for name, entries in splits.items():
    for image_id, _, number in entries:
      origins.setdefault(image_id, f'splits/{name}.txt line {number}')
  score_files.check_images_exist(os.path.join(root, 'images'), origins)
  return splits


class Lamem(tfds.core.GeneratorBasedBuilder):
  """LaMem images with their memorability scores, one TFDS split per official split file."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'The 15 official split files, each with its own scores.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds_common.scored_images_info(
      self,
      'LaMem: 58,741 images with memorability scores, 5 official splits.',
      'memorability score in [0, 1]',
      homepage='http://memorability.csail.mit.edu',
      citation=_CITATION,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = find_root(tfds_common.manual_dir(dl_manager, 'LaMem'), dl_manager.extract)
    splits = read_splits(root)
    images = os.path.join(root, 'images')
    return {name: self._generate_examples(images, entries) for name, entries in splits.items()}

  def _generate_examples(self, images: str, entries: list[tuple[str, float, int]]):
    yield from tfds_common.scored_examples(images, entries)


if __name__ == '__main__':
  tfds_common.build_main(__file__)
