"""`jax.distributed` start-up, and one fate for every process of a multi-process run.

A process that fails posts its message to the coordination service's key-value store; every
other process, watching that key from a thread, logs it and exits too, instead of waiting in a
collective for a peer that is gone. The client is read from JAX's private `distributed` module
(as Orbax does), so that dependency is confined to this file.
"""

import atexit
import contextlib
import os
import sys
import threading
import time

import jax
import ml_collections
from absl import logging
from jax._src import distributed as jax_distributed  # the client; Orbax reads it the same way

_STOP_KEY = 'memjax/stop'  # 'process P failed: message', posted by the first process that fails
_STOPPED_KEY = 'memjax/stopped/{}'  # posted by each process as it stops on a failure
_POLL_MS = 1000  # how often the watcher re-checks whether this process is exiting normally
_STOP_WAIT_MS = 30_000  # how long process 0 keeps the coordination service up for the others
_stopping = threading.Event()  # set when this process stops: normal exit or failure


def initialize_distributed(cfg: ml_collections.ConfigDict) -> None:
  """Starts `jax.distributed` when `config.distributed.enabled`; unset fields are auto-detected
  (SLURM, Open MPI, Cloud TPU, ...) by JAX. Single-process runs need nothing.

  With several processes it also starts the watcher that stops this process when another one
  fails (see `stop_all_processes`).
  """
  if not cfg.enabled:
    return
  jax.distributed.initialize(
    coordinator_address=cfg.coordinator_address,
    num_processes=cfg.num_processes,
    process_id=cfg.process_id,
  )
  logging.info('jax.distributed: process %d of %d', jax.process_index(), jax.process_count())
  if jax.process_count() > 1:
    watcher = threading.Thread(target=_watch_for_failures, name='memjax-stop-watcher', daemon=True)
    watcher.start()
    # Registered after JAX's own exit hook, so it runs first: the watcher is done before the
    # distributed client shuts down.
    atexit.register(_end_watch, watcher)


def _client():
  return jax_distributed.global_state.client


def _end_watch(watcher: threading.Thread) -> None:
  _stopping.set()
  watcher.join()


def _watch_for_failures() -> None:
  """Blocks on the stop key; when another process posts it, logs its message and exits (1)."""
  client = _client()
  while not _stopping.is_set():
    try:
      message = client.blocking_key_value_get(_STOP_KEY, _POLL_MS)
    except Exception as e:  # a timeout, or the client is shutting down
      if 'DEADLINE_EXCEEDED' in str(e):
        continue
      if not _stopping.is_set():
        logging.warning('no longer watching for failures of other processes: %s', e)
      return
    if _stopping.is_set():  # this process failed itself and is already stopping
      return
    _stopping.set()
    logging.error('stopping: %s', message)
    sys.stderr.write(f'memjax: error: stopping because {message}\n')
    _exit(1)


def stop_all_processes(message: str, exit_code: int) -> None:
  """After an error in a multi-process run: makes every process stop, and exits.

  Posts `message` for the other processes (their watchers exit with status 1) and exits with
  `exit_code` without entering `jax.distributed`'s shutdown barrier, which would wait for peers
  that are blocked in a collective. Returns (does nothing) in a single-process run.
  """
  client = _client()
  if client is None or jax.process_count() == 1:
    return
  _stopping.set()
  with contextlib.suppress(Exception):  # another process failed first: its message stands
    client.key_value_set(_STOP_KEY, f'process {jax.process_index()} failed: {message}')
  _exit(exit_code)


def _exit(code: int) -> None:
  """Records that this process stopped and exits at once. Process 0 hosts the coordination
  service, so it waits (a bounded time) until every other process has seen the stop."""
  client, me = _client(), jax.process_index()
  try:
    client.key_value_set(_STOPPED_KEY.format(me), '1')
    if me == 0:
      deadline = time.monotonic() + _STOP_WAIT_MS / 1000
      for other in range(1, jax.process_count()):
        left_ms = max(1, int((deadline - time.monotonic()) * 1000))
        client.blocking_key_value_get(_STOPPED_KEY.format(other), left_ms)
  except Exception:  # a peer is gone already; exit anyway
    pass
  logging.flush()
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)
