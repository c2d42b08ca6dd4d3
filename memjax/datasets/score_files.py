"""Neutral readers of score files: scores, relative image paths, duplicates, the scores CSV.

Shared by the datasets (`image_folder`, `lamem`) and the TFDS builders, and free of TFDS and
TensorFlow. Every check raises `InputError` naming the file, the line and what was expected.
"""

import csv
import dataclasses
import math
import os
import posixpath
import re

from memjax.errors import InputError
from memjax.features.store.spec import has_control_characters

_SHOW = 5  # missing files quoted in a message
_SCORE = 'a score in [0, 1]'
_SPLIT = 'a split name (e.g. train)'
_SPLIT_NAME = re.compile(r'[A-Za-z][A-Za-z0-9_]*')


def parse_score(text: str, path: str, line: int) -> float:
  """A memorability score in [0, 1] from `text`, found at `path` line `line`.

  Raises:
    InputError: not a number, not finite, or outside [0, 1].
  """
  try:
    score = float(text)
  except ValueError:
    raise InputError(f'{path} line {line}: score {text!r} is not a number.') from None
  if not math.isfinite(score) or not 0.0 <= score <= 1.0:
    raise InputError(f'{path} line {line}: score {text!r} is outside [0, 1].')
  return score


def csv_cell(row: dict, column: str, path: str, line: int, expected: str) -> str:
  """The cell of `column` in a `csv.DictReader` row, stripped, and not empty.

  Args:
    row: the row, as `csv.DictReader` yields it (a short row has None for its last columns).
    column: the column name.
    path: the CSV file, for the message.
    line: the row's line number, for the message.
    expected: what the cell should hold, for the message (e.g. 'a score in [0, 1]').

  Raises:
    InputError: the cell is missing (the row has fewer cells than the header) or blank, naming
      the file, the line and the column.
  """
  value = row.get(column)
  if value is None:
    raise InputError(
      f'{path} line {line}, column {column!r}: missing (the row has fewer cells than the '
      f'header); expected {expected}.'
    )
  if not value.strip():
    raise InputError(f'{path} line {line}, column {column!r}: empty; expected {expected}.')
  return value.strip()


def relative_image_path(text: str, path: str, line: int) -> str:
  """`text` as a normalised relative POSIX path, the image id.

  Raises:
    InputError: empty, absolute, leaving its folder with `..`, or holding control characters.
  """
  rel = text.strip().replace('\\', '/')
  norm = posixpath.normpath(rel) if rel else ''
  if not norm or norm.startswith(('/', '../')) or norm in ('.', '..'):
    raise InputError(
      f'{path} line {line}: expected an image path relative to the image folder, got {text!r}.'
    )
  if has_control_characters(norm):
    raise InputError(
      f'{path} line {line}: image path {text!r} holds control characters (NUL, escape, a stray '
      'byte-order mark); is the file damaged or in another encoding?'
    )
  return norm


def check_duplicate(seen: dict[str, int], image_id: str, path: str, line: int) -> None:
  """Records `image_id` at `line`.

  Raises:
    InputError: it was already seen, naming both lines.
  """
  if image_id in seen:
    raise InputError(
      f'{path}: image {image_id!r} is listed twice, on lines {seen[image_id]} and {line}.'
    )
  seen[image_id] = line


def check_images_exist(image_dir: str, origins: dict[str, str]) -> None:
  """Checks every image file exists.

  Args:
    image_dir: the folder the relative paths start from.
    origins: relative image path -> where it is listed ('file line N'), for the message.

  Raises:
    InputError: the folder or some images are missing (the first few are listed with origins).
  """
  if not os.path.isdir(image_dir):
    raise InputError(f'image folder {image_dir} does not exist.')
  missing = [rel for rel in origins if not os.path.isfile(os.path.join(image_dir, rel))]
  if missing:
    shown = '; '.join(f'{rel} ({origins[rel]})' for rel in missing[:_SHOW])
    raise InputError(
      f'{len(missing)} of {len(origins)} image file(s) missing under {image_dir}, first: {shown}.'
    )


CSV_INSTRUCTIONS = """\
Put in `manual_dir` a CSV file with a header row (default `scores.csv`) and the images it lists:

  <manual_dir>/scores.csv           image,score
                                    street/0001.jpg,0.71
  <manual_dir>/<image_dir>/street/0001.jpg

Paths in the image column are relative to `<manual_dir>/<image_dir>` (`image_dir` defaults to
`manual_dir` itself); scores must lie in [0, 1]. Column names, the CSV name, the image folder
and an optional split column are set in `config.data` (or the TFDS builder config).
"""


@dataclasses.dataclass(frozen=True)
class CsvLayout:
  """Which columns of a scores CSV to read.

  Attributes:
    image_column: column holding each image's relative path.
    score_column: column holding each image's score in [0, 1].
    split_column: optional column naming each row's split; without it every row is `train`.
    delimiter: the CSV field separator.
    fields: how messages name the column fields (`config.data.` for a run's config).
  """

  image_column: str = 'image'
  score_column: str = 'score'
  split_column: str | None = None
  delimiter: str = ','
  fields: str = ''


def read_score_csv(path: str, config: CsvLayout) -> dict[str, list[tuple[str, float, int]]]:
  """Reads a scores CSV.

  Args:
    path: the CSV file.
    config: the column names and delimiter.

  Returns:
    Split name -> (image id, score, line number) per row, in file order.

  Raises:
    InputError: missing or empty file, missing columns (the header found is listed), an empty
      or escaping image path, a bad score or split name, or an image listed twice in a split.
  """
  columns = {'image_column': config.image_column, 'score_column': config.score_column}
  if config.split_column:
    columns['split_column'] = config.split_column
  try:
    with open(path, encoding='utf-8-sig', newline='') as f:
      reader = csv.DictReader(f, delimiter=config.delimiter)
      header = reader.fieldnames
      if not header:
        raise InputError(f'{path} is empty; expected a header row with {sorted(columns.values())}.')
      fields = getattr(config, 'fields', '')  # a TFDS builder config has no `fields`
      missing = [f'{col!r} ({fields}{key})' for key, col in columns.items() if col not in header]
      if missing:
        raise InputError(
          f'{path}: missing column(s) {", ".join(missing)}; the header has {header}.'
        )
      rows = [(reader.line_num, row) for row in reader]
  except FileNotFoundError as e:
    raise InputError(f'scores CSV {path} not found.\n{CSV_INSTRUCTIONS}') from e
  except (OSError, UnicodeDecodeError, csv.Error) as e:
    raise InputError(f'cannot read scores CSV {path}: {e}') from e
  splits: dict[str, list[tuple[str, float, int]]] = {}
  seen: dict[str, dict[str, int]] = {}
  for line, row in rows:
    image = csv_cell(row, config.image_column, path, line, 'an image path')
    image_id = relative_image_path(image, path, line)
    score = parse_score(csv_cell(row, config.score_column, path, line, _SCORE), path, line)
    split = 'train'
    if config.split_column:
      split = csv_cell(row, config.split_column, path, line, _SPLIT)
    if not _SPLIT_NAME.fullmatch(split):
      raise InputError(
        f'{path} line {line}: split {split!r} must be letters, digits and _ (e.g. train).'
      )
    check_duplicate(seen.setdefault(split, {}), image_id, path, line)
    splits.setdefault(split, []).append((image_id, score, line))
  if not splits:
    raise InputError(
      f'{path} has a header but no rows; expected one row per image with '
      f'{sorted(columns.values())}.'
    )
  return splits
