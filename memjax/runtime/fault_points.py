"""Test-only fault injection: SIGKILL this process at a named point of a run.

With `MEMJAX_KILL_AT=POINT:N` in the environment, the N-th call of `reached(POINT)` in this
process kills it with SIGKILL: no exception, no cleanup, no exit handlers, exactly like `kill -9`
or a lost machine. Tests use it to stop a real `main.py` run at an exact place and check that
re-running the same command resumes it exactly (tests/test_kill_resume.py). The points:

  train_chunk       a chunk of `steps_per_call` training steps was dispatched (still in flight)
  fold_done         a fold's `eval.json` is written; the next fold has not started
  extract_batch     a batch of features is computed but not yet written to the store
  checkpoint_write  inside an Orbax save, all written but not committed (the tests add this one)

Unset (always, outside tests), `reached` costs one string comparison.
"""

import os
import signal

from absl import logging

ENV = 'MEMJAX_KILL_AT'
_POINT, _, _COUNT = os.environ.get(ENV, '').partition(':')
_seen = 0


def reached(point: str) -> None:
  """Kills this process if this is the N-th time it reaches `point` and MEMJAX_KILL_AT=point:N."""
  global _seen
  if point != _POINT:
    return
  _seen += 1
  if _seen == int(_COUNT or 1):
    logging.warning('%s=%s:%s: killing this process (SIGKILL)', ENV, _POINT, _seen)
    logging.flush()
    os.kill(os.getpid(), signal.SIGKILL)
