"""Test-only fault injection: SIGKILL this process at a named point of a run.

With `MEMJAX_KILL_AT=POINT:N` in the environment, the N-th call of `reached(POINT)` in this
process kills it with SIGKILL: no exception, no cleanup, no exit handlers, exactly like `kill -9`
or a lost machine. `MEMJAX_KILL_AT=POINT:N:TERM` (or `:INT`) sends that signal instead, as a
scheduler's preemption notice or a Ctrl-C would. Tests use it to stop a real `main.py` run at an
exact place and check that re-running the same command resumes it exactly
(tests/test_kill_resume.py). The points:

  train_chunk       a chunk of `steps_per_call` training steps was dispatched (still in flight)
  fold_done         a fold's `eval.json` is written; the next fold has not started
  extract_batch     a batch of features is computed but not yet written to the store
  checkpoint_write  inside an Orbax save, all written but not committed (the tests add this one)

Unset (always, outside tests), `reached` costs one environment look-up.
"""

import os
import signal

from absl import logging

ENV = 'MEMJAX_KILL_AT'
_seen: dict[str, int] = {}


def reached(point: str) -> None:
  """Kills this process if this is the N-th time it reaches `point` and MEMJAX_KILL_AT=point:N.

  The environment is read at each call (not at import), so a test may set it at any time.
  """
  wanted = os.environ.get(ENV)
  if not wanted:
    return
  name, count, signame = (wanted.split(':') + ['', ''])[:3]
  if point != name:
    return
  _seen[point] = _seen.get(point, 0) + 1
  if _seen[point] == int(count or 1):
    sig = signal.Signals[f'SIG{signame or "KILL"}']
    what = 'killing this process' if sig == signal.SIGKILL else 'sending this process'
    logging.warning('%s=%s: %s (%s)', ENV, wanted, what, sig.name)
    logging.flush()
    os.kill(os.getpid(), sig)
