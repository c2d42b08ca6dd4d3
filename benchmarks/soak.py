"""Soak test of preemption: a training run killed again and again ends exactly as if it never was.

A `main.py --mode=train` run of configs/test.py (2 folds, 3 epochs) is killed `--kills` times and
re-run after each kill with the same command, then run to the end. Each kill is drawn from a
seeded RNG: SIGTERM, SIGINT or SIGKILL at a random moment of the run, or SIGKILL at an exact
place inside an Orbax checkpoint write (all items written, not committed), or a signal while a
chunk of steps is in flight (memjax/runtime/fault_points.py). The end state is compared with an
uninterrupted run of the same command: every fold's eval.json (every number, exactly), the
summary's mean Spearman, and the parameters and train state of each fold's evaluated and latest
checkpoints, bit for bit. A checkpoint set aside as damaged (fold_K/damaged_checkpoints/) that
can still be read is a failure too, and so is a traceback in any log.

  python -m benchmarks.soak --kills=10 --seed=0

prints one JSON line of figures (kills by kind, restarts, exit codes, differences, tracebacks,
intact checkpoints set aside, seconds). tests/test_soak.py runs a short seeded version.
"""

import argparse
import collections
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = ['--config=configs/test.py']
# main.py with the `checkpoint_write` fault point inside Orbax's save: after every item of the
# step is written into its temporary directory, before the rename that commits it.
MID_SAVE = """
import orbax.checkpoint as ocp
from absl import app

import main
from memjax.runtime import fault_points

finalize = ocp.CompositeCheckpointHandler.finalize


def finalize_or_die(self, directory):
  fault_points.reached('checkpoint_write')
  return finalize(self, directory)


ocp.CompositeCheckpointHandler.finalize = finalize_or_die
app.run(main.main)
"""
SIGNALS = {'TERM': signal.SIGTERM, 'INT': signal.SIGINT, 'KILL': signal.SIGKILL}
# Exit statuses a stopped run may have: 75 (stopped at a checkpoint, resumable), 130 (Ctrl-C
# before training started), -9 / -15 (killed, or SIGTERM before memjax's handler was installed).
STOPPED = {75, 130, -signal.SIGKILL, -signal.SIGTERM, -signal.SIGINT}
STEPS_PER_FOLD = 66  # configs/test.py: 3 epochs of 22 steps
CHUNKS_PER_FOLD = 15  # chunks of steps_per_call=5 steps, cut at each epoch's end (5 per epoch)
SAVES_PER_FOLD = 3  # one checkpoint per epoch


def environment(cache_dir: str | None) -> dict:
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', 'TF_CPP_MIN_LOG_LEVEL': '2'}
  env.pop('MEMJAX_KILL_AT', None)
  if cache_dir:
    env.update(
      JAX_COMPILATION_CACHE_DIR=cache_dir,
      JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
      JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='-1',
    )
  return env


def run(
  workdir: str, env: dict, kill: dict | None = None, extra: list[str] | None = None
) -> tuple[int, str, bool]:
  """One `main.py` run into `workdir`, stopped as `kill` says.

  Args:
    workdir: the run's workdir.
    env: its environment.
    kill: None (run to the end); {'at': 'POINT:N[:SIG]'} (a fault point); or {'after': seconds,
      'signal': 'TERM'|'INT'|'KILL'} (a signal at a moment).
    extra: more flags for main.py.

  Returns:
    (exit status, log, whether the kill happened).
  """
  env = dict(env)
  program = [sys.executable, 'main.py']
  if kill and 'at' in kill:
    env['MEMJAX_KILL_AT'] = kill['at']
    if kill['at'].startswith('checkpoint_write'):
      program = [sys.executable, '-c', MID_SAVE]
  with tempfile.TemporaryFile('w+') as out:
    proc = subprocess.Popen(
      [*program, *FLAGS, *(extra or []), f'--workdir={workdir}'],
      cwd=ROOT,
      env=env,
      stdout=out,
      stderr=out,
    )
    sent = False
    if kill and 'after' in kill:
      try:
        proc.wait(timeout=kill['after'])
      except subprocess.TimeoutExpired:
        proc.send_signal(SIGNALS[kill['signal']])
        sent = True
    code = proc.wait(timeout=600)
    out.seek(0)
    log = out.read()
  if kill and 'at' in kill:
    sent = 'MEMJAX_KILL_AT=' in log
  return code, log, sent


KINDS = ('moment', 'moment', 'checkpoint_write', 'train_chunk')  # drawn with these weights


def draw_kill(rng: random.Random, duration: float, kinds=KINDS) -> dict:
  """One kill: at a random moment (half of them), inside a checkpoint write, or mid-chunk."""
  kind = rng.choice(kinds)
  if kind == 'moment':
    after = round(rng.uniform(0.15, 1.0) * duration, 2)
    return {'after': after, 'signal': rng.choice(list(SIGNALS))}
  if kind == 'checkpoint_write':
    return {'at': f'checkpoint_write:{rng.randint(1, SAVES_PER_FOLD)}'}
  return {'at': f'train_chunk:{rng.randint(1, CHUNKS_PER_FOLD)}:{rng.choice(list(SIGNALS))}'}


def describe(kill: dict) -> str:
  if 'after' in kill:
    return f'SIG{kill["signal"]} at {kill["after"]} s'
  return kill['at']


def read_items(step_dir: str) -> dict:
  """The `params` and `train` items of a checkpoint step directory, as NumPy trees."""
  import orbax.checkpoint as ocp

  out = {}
  with ocp.PyTreeCheckpointer() as checkpointer:
    for item in ('params', 'train'):
      tree = checkpointer.restore(os.path.join(step_dir, item))
      out[item] = {k: np.asarray(v) for k, v in _flatten(tree).items()}
  return out


def _flatten(tree, prefix: str = '') -> dict:
  if isinstance(tree, dict):
    out = {}
    for key, value in tree.items():
      out.update(_flatten(value, f'{prefix}{key}/'))
    return out
  if isinstance(tree, list | tuple):
    out = {}
    for i, value in enumerate(tree):
      out.update(_flatten(value, f'{prefix}{i}/'))
    return out
  return {prefix.rstrip('/'): tree}


def differences(reference: str, workdir: str) -> list[str]:
  """Every way `workdir` differs from `reference`: eval.json numbers, summary, parameters."""
  found = []
  folds = sorted(n for n in os.listdir(reference) if re.fullmatch(r'fold_\d+', n))
  for fold in folds:
    a_path, b_path = (os.path.join(d, fold, 'eval.json') for d in (reference, workdir))
    if not os.path.exists(b_path):
      found.append(f'{fold}: no eval.json')
      continue
    with open(a_path) as f:
      a = json.load(f)
    with open(b_path) as f:
      b = json.load(f)
    found += [f'{fold}/eval.json {k}: {a.get(k)!r} vs {b.get(k)!r}' for k in a if a[k] != b.get(k)]
    checkpoints = os.path.join(reference, fold, 'checkpoints')
    latest = max(int(s) for s in os.listdir(checkpoints) if s.isdigit())
    for step in sorted({a['checkpoint_step'], latest}):
      mine = os.path.join(workdir, fold, 'checkpoints', str(step))
      if not os.path.isdir(mine):
        found.append(f'{fold}: no checkpoint step {step}')
        continue
      ref_items = read_items(os.path.join(checkpoints, str(step)))
      my_items = read_items(mine)
      for item, leaves in ref_items.items():
        for name, value in leaves.items():
          other = my_items[item].get(name)
          if other is None or other.shape != value.shape or other.tobytes() != value.tobytes():
            found.append(f'{fold} step {step} {item}/{name}: not bitwise equal')
  with open(os.path.join(reference, 'summary.json')) as f:
    a = json.load(f)['spearman_mean']
  with open(os.path.join(workdir, 'summary.json')) as f:
    b = json.load(f)['spearman_mean']
  if a != b:
    found.append(f'summary spearman_mean: {a!r} vs {b!r}')
  return found


def intact_set_aside(workdir: str) -> list[str]:
  """Checkpoints set aside as damaged that can be read in full (they should not have been)."""
  intact = []
  for fold in sorted(os.listdir(workdir)):
    aside = os.path.join(workdir, fold, 'damaged_checkpoints')
    if not os.path.isdir(aside):
      continue
    for name in sorted(os.listdir(aside)):
      try:
        read_items(os.path.join(aside, name))
      except Exception:  # unreadable: rightly set aside
        continue
      intact.append(os.path.join(fold, 'damaged_checkpoints', name))
  return intact


def soak(
  root: str,
  kills: int,
  seed: int,
  cache_dir: str | None = None,
  flags: tuple[str, ...] = (),
  kinds: tuple[str, ...] = KINDS,
  log=print,
) -> dict:
  """Runs the reference, then rounds of killed runs under `root`, until `kills` kills are done.

  A round kills and re-runs one workdir until a run ends before its kill (or the kills are all
  done); its last run goes to the end and the workdir is compared with the reference. Later
  rounds start in a fresh workdir.

  Args:
    root: where the workdirs go.
    kills: how many kills.
    seed: the RNG seed of the kills drawn.
    cache_dir: a JAX compilation cache for every run, or None.
    flags: more flags for main.py (e.g. a config override).
    kinds: the kinds of kill drawn (see `KINDS`).
    log: a function called with a line per run.

  Returns:
    The figures (see the module docstring).
  """
  start = time.time()
  env = environment(cache_dir)
  extra = list(flags)
  reference = os.path.join(root, 'reference')
  began = time.time()
  code, text, _ = run(reference, env, extra=extra)
  duration = time.time() - began
  if code != 0:
    raise RuntimeError(f'the reference run failed ({code}):\n{text[-3000:]}')
  rng = random.Random(seed)
  done = collections.Counter()
  codes = collections.Counter()
  tracebacks, diffs, intact = [], [], []
  restarts = runs = rounds = 0
  while sum(done.values()) < kills:
    rounds += 1
    workdir = os.path.join(root, f'killed_{rounds}')
    while sum(done.values()) < kills:
      kill = draw_kill(rng, duration, kinds)
      code, text, happened = run(workdir, env, kill, extra=extra)
      runs += 1
      codes[code] += 1
      if 'Traceback' in text:
        tracebacks.append(f'run {runs} ({describe(kill)}): {text[text.index("Traceback") :][:800]}')
      if code == 0:
        log(f'round {rounds} run {runs}: {describe(kill)}: the run ended first')
        break
      if code not in STOPPED:
        raise RuntimeError(f'run {runs} ({describe(kill)}) exited {code}:\n{text[-3000:]}')
      done[kind_of(kill) if happened else 'not sent'] += 1
      restarts += 1
      log(f'round {rounds} run {runs}: {describe(kill)}: exit {code}')
    else:  # the kills are done: the last run goes to the end
      code, text, _ = run(workdir, env, extra=extra)
      runs += 1
      codes[code] += 1
      if 'Traceback' in text:
        tracebacks.append(f'run {runs} (to the end): {text[text.index("Traceback") :][:800]}')
      if code != 0:
        raise RuntimeError(f'the last run exited {code}:\n{text[-3000:]}')
    diffs += [f'round {rounds}: {d}' for d in differences(reference, workdir)]
    intact += [f'round {rounds}: {d}' for d in intact_set_aside(workdir)]
  return {
    'kills': sum(done.values()),
    'kills_by_kind': dict(sorted(done.items())),
    'restarts': restarts,
    'runs': runs,
    'rounds': rounds,
    'exit_codes': {str(k): v for k, v in sorted(codes.items())},
    'differences': len(diffs),
    'difference_list': diffs[:20],
    'intact_set_aside': intact,
    'tracebacks': tracebacks,
    'reference_seconds': round(duration, 1),
    'seconds': round(time.time() - start, 1),
  }


def kind_of(kill: dict) -> str:
  """'SIGTERM at a moment', 'SIGKILL in a checkpoint write', 'SIGINT mid-chunk', ..."""
  if 'after' in kill:
    return f'SIG{kill["signal"]} at a moment'
  point, _, *sig = kill['at'].split(':')
  where = 'in a checkpoint write' if point == 'checkpoint_write' else 'mid-chunk'
  return f'SIG{sig[0] if sig else "KILL"} {where}'


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--kills', type=int, default=10)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--root', default=None, help='where the workdirs go (default: a temp dir)')
  parser.add_argument('--cache_dir', default=None, help='a JAX compilation cache to share')
  args = parser.parse_args()
  root = args.root or tempfile.mkdtemp(prefix='memjax_soak_')
  figures = soak(root, args.kills, args.seed, args.cache_dir, log=lambda m: print(m, flush=True))
  print(json.dumps(figures))
  if figures['differences'] or figures['intact_set_aside'] or figures['tracebacks']:
    sys.exit(1)


if __name__ == '__main__':
  main()
