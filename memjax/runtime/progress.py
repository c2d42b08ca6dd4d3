"""Progress a person can watch: a bar with rate and ETA on an interactive terminal.

Extraction, prediction and training can take hours on a CPU. When stderr is a terminal (and this
is process 0), `bar` shows a tqdm bar; otherwise it returns a bar that draws nothing, and the log
lines (one per training epoch, with the run's examples/s and time left from `RunProgress`) are
what a log file gets. `MEMJAX_PROGRESS=0` turns bars off, `=1` forces them on.

On a terminal the command line shows only the lines logged with `extra=CONSOLE` (a fold's
result, the run's mean) and warnings, under the one bar of the run (`console_only`).
"""

import logging as std_logging
import os
import sys
import time

import jax
import tqdm

ENV = 'MEMJAX_PROGRESS'
CONSOLE = {'console': True}  # `extra=` of a log line a terminal shows beside the bar


class _Silent:
  """The interface of a tqdm bar that draws nothing."""

  def update(self, n: int = 1) -> None:
    del n

  def set_postfix_str(self, text: str) -> None:
    del text

  def set_description(self, text: str) -> None:
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


def console_only(record: std_logging.LogRecord) -> bool:
  """A log filter for a terminal: warnings, and the lines logged with `extra=CONSOLE`."""
  return record.levelno >= std_logging.WARNING or getattr(record, 'console', False)


class ConsoleFormatter(std_logging.Formatter):
  """Lines for a terminal: the message alone, warnings and errors named as such."""

  def format(self, record: std_logging.LogRecord) -> str:
    text = record.getMessage()
    return text if record.levelno < std_logging.WARNING else f'{record.levelname.lower()}: {text}'


def _duration(seconds: float) -> str:
  if seconds < 90:
    return f'{seconds:.0f} s'
  if seconds < 5400:
    return f'{seconds / 60:.0f} min'
  return f'{seconds / 3600:.1f} h'


class RunProgress:
  """Where a training run is over all its folds: one bar on a terminal (fold k/N, epoch, examples/s,
  time left for the whole run), and the same figures for the log lines.

  Steps trained before (a resumed fold) count as done but not in the rate.
  """

  def __init__(self, total_steps: int, num_folds: int, examples_per_step: int):
    self.total, self.done, self.num_folds = total_steps, 0, num_folds
    self._examples = examples_per_step
    self._timed_steps, self._start = 0, None
    self._bar = bar(total_steps, 'training', 'step')
    self.where = ''

  def at(self, index: int, epoch: int, num_epochs: int) -> None:
    """Now in the `index`-th fold of the run (1-based), epoch `epoch` (1-based)."""
    self.where = f'fold {index}/{self.num_folds} epoch {epoch}/{num_epochs}'
    self._bar.set_description(self.where)

  def skip(self, steps: int) -> None:
    """Steps trained by an earlier run: done, not timed."""
    self.done += steps
    self._bar.update(steps)

  def advance(self, steps: int) -> None:
    """Steps trained now (the clock starts at the first call, after compilation)."""
    if self._start is None:
      self._start = time.monotonic()
    else:
      self._timed_steps += steps
    self.done += steps
    self._bar.update(steps)
    rate = self.examples_per_second()
    if rate:
      self._bar.set_postfix_str(f'{rate:,.0f} examples/s')

  def examples_per_second(self) -> float | None:
    if self._start is None or not self._timed_steps:
      return None
    return self._timed_steps * self._examples / max(time.monotonic() - self._start, 1e-9)

  def summary(self) -> str:
    """`1,234 examples/s, about 3 min left` (or what is known so far)."""
    rate = self.examples_per_second()
    if rate is None:
      return 'timing after the first chunk'
    left = (self.total - self.done) * self._examples / rate
    return f'{rate:,.0f} examples/s, about {_duration(left)} left in the run'

  def close(self) -> None:
    self._bar.close()
