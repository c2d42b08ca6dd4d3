"""TFDS builder for any memorability or interestingness dataset given as images + a CSV of scores.

It serves the paper's Table 2 memorability and Table 3 interestingness datasets and user data.
`manual_dir` holds a CSV (one row per image, with a header) and the images; the config names the
CSV, the image folder and the columns. Each example has `image`, `id` (the image path relative
to the image folder, as written in the CSV, normalised to `/` separators) and `score` (float32 in
[0, 1]). Rows go to split `train`, or to the split named in `split_column` when set. Examples keep
the CSV's row order. JPEG, PNG and BMP files are stored as they are; other formats PIL can read
are stored as PNG.

Build with the default config (`scores.csv` with columns `image` and `score`), offline, from the
repository root (with apache_beam installed, which TFDS 4.9.10's `tfds` script imports,
`PYTHONPATH=. tfds build memjax/datasets/tfds_image_folder.py` takes the same flags)::

  python -m memjax.datasets.tfds_image_folder --manual_dir=/data/my_dataset \\
    --data_dir=/data/tensorflow_datasets

or, with your own layout, from Python::

  config = tfds_image_folder.ScoredImageFolderConfig(
    name='figrim', csv_file='scores.csv', image_dir='images', image_column='filename',
    score_column='hit_rate')
  builder = tfds_image_folder.ScoredImageFolder(config=config, data_dir='/data/tensorflow_datasets')
  builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(manual_dir='/data/figrim'))
  ds = builder.as_dataset(split='train')
"""

import dataclasses
import os

import tensorflow_datasets as tfds

from memjax.datasets import score_files, tfds_common


@dataclasses.dataclass(eq=False)
class ScoredImageFolderConfig(tfds.core.BuilderConfig):
  """Where the CSV and images are, and which columns to read.

  Attributes:
    csv_file: the CSV, relative to `manual_dir`.
    image_dir: the folder image paths start from, relative to `manual_dir` ('' = itself).
    image_column: column holding each image's relative path.
    score_column: column holding each image's score in [0, 1].
    split_column: optional column naming each row's split; without it every row is `train`.
    delimiter: the CSV field separator.
  """

  csv_file: str = 'scores.csv'
  image_dir: str = ''
  image_column: str = 'image'
  score_column: str = 'score'
  split_column: str | None = None
  delimiter: str = ','


class ScoredImageFolder(tfds.core.GeneratorBasedBuilder):
  """A folder of images with a CSV of memorability (or interestingness) scores."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Images, relative-path ids and scores from a CSV.'}
  BUILDER_CONFIGS = [
    ScoredImageFolderConfig(name='default', description='scores.csv with columns image, score.')
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = score_files.CSV_INSTRUCTIONS

  def _info(self) -> tfds.core.DatasetInfo:
    description = 'Images with memorability or interestingness scores from a CSV file.'
    return tfds_common.scored_images_info(self, description, 'score in [0, 1]')

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual_dir = tfds_common.manual_dir(dl_manager, self.name)
    config = self.builder_config
    layout = score_files.CsvLayout(
      config.image_column, config.score_column, config.split_column, config.delimiter
    )
    splits = score_files.read_score_csv(os.path.join(manual_dir, config.csv_file), layout)
    image_dir = os.path.join(manual_dir, config.image_dir)
    origins = {}
    for entries in splits.values():
      for image_id, _, line in entries:
        origins.setdefault(image_id, f'{config.csv_file} line {line}')
    score_files.check_images_exist(image_dir, origins)
    return {name: self._generate_examples(image_dir, entries) for name, entries in splits.items()}

  def _generate_examples(self, image_dir: str, entries: list[tuple[str, float, int]]):
    yield from tfds_common.scored_examples(image_dir, entries)


if __name__ == '__main__':
  tfds_common.build_main(__file__)
