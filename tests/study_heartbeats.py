"""Test helper: make a search trial's heartbeat stale at once instead of sleeping past grace."""

import contextlib
import sqlite3


def age_heartbeat(db_path: str, trial_id: int, seconds: float) -> None:
  """Moves the last heartbeat of trial `trial_id` (optuna's id, not its number) `seconds` into
  the past in the SQLite study `db_path`: the trial then looks as stale as a dead worker's does
  after that long a wait, and the next worker to start a trial fails and retries it."""
  with contextlib.closing(sqlite3.connect(db_path)) as db, db:
    changed = db.execute(
      'UPDATE trial_heartbeats SET heartbeat = datetime(heartbeat, ?) WHERE trial_id = ?',
      (f'-{seconds} seconds', trial_id),
    ).rowcount
  assert changed == 1, (db_path, trial_id)
