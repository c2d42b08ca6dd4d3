"""TensorBoard scalars without TensorFlow: the part of clu's metric writer that training uses.

`create_writer(logdir, just_logging)` returns a writer with clu's `write_scalars(step, dict)`,
`flush()` and `close()`: every call logs one line at debug level (`[step] name=value, ...`, as
clu's LoggingWriter does; `--verbose` shows it) and, unless `just_logging`, appends the scalars
to a TensorBoard event file `logdir/events.out.tfevents.<time>.<host>.<pid>.<n>`. The records
are TensorFlow's TFRecord framing (length, masked CRC-32C, event proto, masked CRC-32C) written
by tensorboard's own `RecordWriter`, and each value is a rank-0 float32 tensor under the
`scalars` plugin: what `tf.summary.scalar` writes, so TensorBoard and `EventAccumulator` read
the files the same way. Only tensorboard's protobufs are imported: clu's writer imports
TensorFlow (seconds of start-up; docs/install.md has the times) for the same files.
"""

import itertools
import os
import socket
import time
from collections.abc import Mapping

import numpy as np
from absl import logging
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.summary.writer.record_writer import RecordWriter
from tensorboard.util import tensor_util

_FILE_NUMBERS = itertools.count()  # two writers of one process in one second get two files


def log_line(step: int, scalars: Mapping[str, float]) -> str:
  """clu's LoggingWriter line: `[step] a=1.5, b=2` (names sorted, floats to 6 digits)."""
  values = [
    f'{k}={v:.6g}' if isinstance(v, float | np.floating) else f'{k}={v}'
    for k, v in sorted(scalars.items())
  ]
  return f'[{step}] {", ".join(values)}'


class ScalarWriter:
  """Logs scalars and, with a `logdir`, writes them to a TensorBoard event file."""

  def __init__(self, logdir: str | None):
    self._records = None
    if logdir is None:
      return
    os.makedirs(logdir, exist_ok=True)
    host, number = socket.gethostname(), next(_FILE_NUMBERS)
    name = f'events.out.tfevents.{int(time.time()):010d}.{host}.{os.getpid()}.{number}'
    self.path = os.path.join(logdir, name)
    self._records = RecordWriter(open(self.path, 'wb'))  # noqa: SIM115 (closed by close())
    self._write(event_pb2.Event(wall_time=time.time(), file_version='brain.Event:2'))
    self.flush()

  def _write(self, event: event_pb2.Event) -> None:
    self._records.write(event.SerializeToString())

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    """Logs `scalars` at `step` and appends them to the event file (one event per value)."""
    logging.debug('%s', log_line(step, scalars))
    if self._records is None:
      return
    now = time.time()
    for name, value in scalars.items():
      summary = summary_pb2.Summary(
        value=[
          summary_pb2.Summary.Value(
            tag=name,
            tensor=tensor_util.make_tensor_proto(np.float32(value)),
            metadata=scalar_metadata.create_summary_metadata(display_name=name, description=''),
          )
        ]
      )
      self._write(event_pb2.Event(wall_time=now, step=int(step), summary=summary))

  def flush(self) -> None:
    """Makes every event written so far readable (TensorBoard reads a growing file)."""
    if self._records is not None:
      self._records.flush()

  def close(self) -> None:
    """Flushes and closes the event file; later writes only log."""
    if self._records is not None:
      self._records.close()
      self._records = None


def create_writer(logdir: str, just_logging: bool = False) -> ScalarWriter:
  """The writer training uses: logging only on processes > 0 (`just_logging`), as clu's
  `create_default_writer(logdir, just_logging=...)`.

  Example:
    >>> writer = create_writer('/tmp/memjax/run/fold_0')
    >>> writer.write_scalars(10, {'train_loss': 0.5})
    >>> writer.close()
  """
  return ScalarWriter(None if just_logging else logdir)
