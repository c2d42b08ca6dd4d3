"""Small table writers shared by the sweep, the search and the report: Markdown and CSV, atomic."""

import csv
import io
import math
import os
from collections.abc import Sequence

import jax

from memjax.runtime import atomic_files


def write_text(path: str, text: str) -> None:
  """Writes `text` to `path` atomically (temp file + rename), process 0 only."""
  if jax.process_index() != 0:
    return
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  atomic_files.write_text(path, text)


def write_csv(path: str, header: Sequence[str], rows: Sequence[Sequence]) -> None:
  """Writes a CSV with a header row, atomically."""
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator='\n')
  writer.writerow(header)
  writer.writerows(rows)
  write_text(path, buffer.getvalue())


def markdown(header: Sequence[str], rows: Sequence[Sequence]) -> str:
  """A GitHub-flavoured Markdown table (no trailing newline)."""
  lines = ['| ' + ' | '.join(str(h) for h in header) + ' |', '|' + ' --- |' * len(header)]
  lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
  return '\n'.join(lines)


def fmt(value, digits: int = 4) -> str:
  """A number for a table: fixed digits; '' for None, 'nan' for NaN."""
  if value is None:
    return ''
  if isinstance(value, float) and math.isnan(value):
    return 'nan'
  if isinstance(value, float):
    return f'{value:.{digits}f}'
  return str(value)
