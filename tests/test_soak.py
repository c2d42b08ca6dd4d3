"""A short seeded soak test of preemption (benchmarks/soak.py has the long one, with kills at
random moments too): a one-fold training run killed twice at drawn places (seed 8: SIGKILL inside
its second checkpoint write, then SIGTERM while the resumed run's third chunk of steps is in
flight), re-run each time, ends bitwise equal to an uninterrupted run, with no intact checkpoint
set aside and no traceback in any log."""

import json
import os

from benchmarks import soak


def test_killed_twice_and_resumed_ends_bitwise_equal(tmp_path, jax_cache_dir):
  figures = soak.soak(
    str(tmp_path),
    kills=2,
    seed=8,
    cache_dir=jax_cache_dir,
    flags=('--config.data.run_folds=(0,)',),
    kinds=('checkpoint_write', 'train_chunk'),
  )
  assert figures['kills_by_kind'] == {'SIGKILL in a checkpoint write': 1, 'SIGTERM mid-chunk': 1}
  assert figures['restarts'] == 2 and figures['exit_codes'] == {'-9': 1, '0': 1, '75': 1}
  assert figures['differences'] == 0, figures['difference_list']
  assert figures['intact_set_aside'] == [] and figures['tracebacks'] == [], figures

  # The comparison can fail: one changed number in a fold's eval.json is found.
  killed = os.path.join(str(tmp_path), f'killed_{figures["rounds"]}')
  path = os.path.join(killed, 'fold_0', 'eval.json')
  with open(path) as f:
    evaluation = json.load(f)
  evaluation['spearman'] += 1e-12
  with open(path, 'w') as f:
    json.dump(evaluation, f)
  assert soak.differences(os.path.join(str(tmp_path), 'reference'), killed) == [
    f'fold_0/eval.json spearman: {evaluation["spearman"] - 1e-12!r} vs {evaluation["spearman"]!r}'
  ]
