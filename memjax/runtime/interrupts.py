"""SIGTERM and SIGINT as requests to stop at the next step boundary, not as crashes.

SLURM, Kubernetes and preemptible TPU/GPU VMs send SIGTERM some seconds before they kill a job;
Ctrl-C sends SIGINT. Inside `StopRequests`, the first of either only records the request: the
training loop checks `requested()` after each chunk of steps, writes a checkpoint at that step
and raises `StoppedError` (exit status 75: re-run to resume). A second signal exits at once
(status 128 + signal number), as an impatient user expects.

In a run of several processes every process must stop at the same step, or one would wait in a
collective for the others: `requested()` then agrees across processes (any process asked ->
all stop). Schedulers send SIGTERM to every task of a job, so each process's own handler sees it;
JAX's `multihost_utils.reached_preemption_sync_point` is not used: it needs the coordination
service's preemption support and step numbers that only grow, and answered True between folds
when tried.
"""

import contextlib
import os
import signal
import threading

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_received: list[int] = []


def _handler(signum, frame) -> None:
  del frame
  if _received:  # the second signal: stop now
    logging.warning('second %s: exiting at once', signal.Signals(signum).name)
    logging.flush()
    os._exit(128 + signum)
  _received.append(signum)
  logging.warning(
    '%s received: stopping at the next step boundary after writing a checkpoint '
    '(send it again to exit at once)',
    signal.Signals(signum).name,
  )


@contextlib.contextmanager
def stop_requests():
  """Installs the handlers for the block (main thread only; elsewhere a no-op)."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  _received.clear()
  previous = {s: signal.signal(s, _handler) for s in _SIGNALS}
  try:
    yield
  finally:
    for s, h in previous.items():
      signal.signal(s, h)
    _received.clear()


def signal_name() -> str:
  """The name of the signal that asked to stop (`another process`: a signal to another one)."""
  return signal.Signals(_received[0]).name if _received else 'another process'


def requested() -> bool:
  """Whether to stop now; the same answer on every process (a collective when several)."""
  if jax.process_count() == 1:
    return bool(_received)
  mine = np.asarray([1 if _received else 0], np.int32)
  return bool(np.max(multihost_utils.process_allgather(mine)))
