"""Progress a person can watch: a bar with rate and ETA on an interactive terminal.

Extraction, prediction and training epochs can take hours on a CPU. When stderr is a terminal
(and this is process 0), `bar` shows a tqdm bar; otherwise it returns a bar that draws nothing,
and the periodic log lines (steps/s and ETA from clu, images/s and ETA from extraction) are what
a log file gets, as before. `MEMJAX_PROGRESS=0` turns bars off, `=1` forces them on.
"""

import os
import sys

import jax
import tqdm

ENV = 'MEMJAX_PROGRESS'


class _Silent:
  """The interface of a tqdm bar that draws nothing."""

  def update(self, n: int = 1) -> None:
    del n

  def set_postfix_str(self, text: str) -> None:
    del text

  def close(self) -> None:
    pass


def enabled() -> bool:
  """Whether bars are drawn: an interactive stderr on process 0, unless MEMJAX_PROGRESS says."""
  wanted = os.environ.get(ENV)
  if wanted in ('0', '1'):
    return wanted == '1'
  return jax.process_index() == 0 and sys.stderr.isatty()


def bar(total: int, description: str, unit: str, initial: int = 0):
  """A progress bar over `total` units (a silent one when `enabled()` is False)."""
  if not enabled():
    return _Silent()
  return tqdm.tqdm(
    total=total, initial=initial, desc=description, unit=unit, dynamic_ncols=True, leave=False
  )
