"""Several processes, for real: two `main.py` processes with 2 CPU devices each, coordinated over
127.0.0.1 (`jax.distributed`, gloo CPU collectives), train like one process with 4 devices (the
shared `trained` run, tests/conftest.py); one process evaluates their checkpoints; an error in
one process stops both.

The two-process command is docs/several-hosts.md's with a free port and a fresh workdir. The
launches here share JAX's persistent compilation cache, so programs they have in common (the
second fold's, the failure test's) compile once. Every launch has a timeout: a hang fails. The
one-process evaluation runs in this process: only the training and the failure are multi-process.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_SECS = 300  # per launch; healthy runs take well under a minute each
README_PORT, README_WORKDIR = '12355', '/tmp/memjax/two_processes'
# docs/several-hosts.md's two-process command; {process_id} is 0 in one shell and 1 in the other.
TWO_PROCESS_COMMAND = (
  '.venv/bin/python main.py --config=configs/test.py --workdir=/tmp/memjax/two_processes '
  '--config.distributed.enabled=True --config.distributed.coordinator_address=127.0.0.1:12355 '
  '--config.distributed.num_processes=2 --config.distributed.process_id={process_id}'
)
README_ENV = 'JAX_PLATFORMS=cpu JAX_NUM_CPU_DEVICES=2 JAX_CPU_COLLECTIVES_IMPLEMENTATION=gloo'
# Process 1 of the failure test: main.py, except that it raises just before its first training
# step, while process 0 goes on into that step's collectives.
FAILING_MAIN = """
from absl import app

import main
from memjax import input_pipeline


def fail(*args, **kwargs):
  raise RuntimeError('injected failure before the first step')


input_pipeline.place = fail
app.run(main.main)
"""


def _free_port() -> str:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return str(s.getsockname()[1])


def _env(cache_dir: str, num_devices: int) -> dict:
  return {
    **os.environ,
    'JAX_PLATFORMS': 'cpu',
    'JAX_NUM_CPU_DEVICES': str(num_devices),
    'JAX_CPU_COLLECTIVES_IMPLEMENTATION': 'gloo',
    'JAX_COMPILATION_CACHE_DIR': cache_dir,
    'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0',
    'JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES': '-1',
    'TF_CPP_MIN_LOG_LEVEL': '2',
  }


def _two_process_argv(workdir: str, port: str, process_id: int) -> list[str]:
  command = TWO_PROCESS_COMMAND.format(process_id=process_id)
  command = command.replace(README_WORKDIR, workdir).replace(README_PORT, port)
  return [sys.executable, *command.split()[1:]]


def _launch(argvs: list[list[str]], env: dict, log_dir, *, stop_all_on_failure: bool = True):
  """Runs the commands side by side; returns [(exit code, output, seconds to exit)] in order.

  Anything still running after TIMEOUT_SECS is killed and fails the test. With
  `stop_all_on_failure`, the first non-zero exit kills the others (a failing run fails fast).
  """
  os.makedirs(log_dir, exist_ok=True)
  paths = [os.path.join(log_dir, f'process_{i}.log') for i in range(len(argvs))]
  start, ended, procs = time.monotonic(), [None] * len(argvs), []
  try:
    for argv, path in zip(argvs, paths, strict=True):
      with open(path, 'w') as log:
        procs.append(
          subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        )
    while None in ended and time.monotonic() - start < TIMEOUT_SECS:
      for i, p in enumerate(procs):
        if ended[i] is None and p.poll() is not None:
          ended[i] = time.monotonic() - start
      if stop_all_on_failure and any(p.returncode for p in procs if p.returncode is not None):
        break
      time.sleep(0.2)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
      p.wait()
  outputs = []
  for path in paths:
    with open(path) as f:
      outputs.append(f.read())
  failed = any(t is not None and p.returncode for p, t in zip(procs, ended, strict=True))
  if None in ended and not (stop_all_on_failure and failed):
    hung = ended.index(None)
    pytest.fail(f'process {hung} still ran after {TIMEOUT_SECS}s:\n{outputs[hung][-5000:]}')
  return [(p.returncode, out, t) for p, out, t in zip(procs, outputs, ended, strict=True)]


def _check_ok(results) -> None:
  for i, (code, out, _) in enumerate(results):
    assert code == 0, f'process {i} exited with {code}:\n{out[-5000:]}'


def _summary(workdir: str) -> dict:
  with open(os.path.join(workdir, 'summary.json')) as f:
    return json.load(f)


@pytest.fixture(scope='module')
def cache_dir(jax_cache_dir):
  return jax_cache_dir  # the session's (tests/conftest.py): programs compile once per session


@pytest.fixture(scope='module')
def two_processes(tmp_path_factory, cache_dir):
  """`configs/test.py` trained by two processes with 2 CPU devices each."""
  root = tmp_path_factory.mktemp('two_processes')
  workdir, port = str(root / 'run'), _free_port()
  argvs = [_two_process_argv(workdir, port, i) for i in range(2)]
  results = _launch(argvs, _env(cache_dir, 2), root / 'logs')
  _check_ok(results)
  return workdir, _summary(workdir), results


def test_two_processes_train_like_one_process_with_four_devices(two_processes, trained):
  workdir, two, results = two_processes
  _, _, one_process = trained
  assert (two['num_processes'], two['num_devices']) == (2, 4)
  assert (one_process['num_processes'], one_process['num_devices']) == (1, 4)
  assert len(two['folds']) == len(one_process['folds']) == 2
  for a, b in zip(two['folds'], one_process['folds'], strict=True):
    assert a['fold'] == b['fold']
    assert a['spearman'] == pytest.approx(b['spearman'], abs=1e-5)
    assert a['checkpoint_step'] == b['checkpoint_step']
    assert a['num_examples'] == b['num_examples'] == a['num_test']  # each test row once
    assert a['thresholds'] == pytest.approx(b['thresholds'])
  assert two['spearman_mean'] == pytest.approx(one_process['spearman_mean'], abs=1e-5)
  for fold in (0, 1):  # TensorBoard events come from process 0 alone
    names = os.listdir(os.path.join(workdir, f'fold_{fold}'))
    assert sum(n.startswith('events.out.tfevents') for n in names) == 1
    assert 'eval.json' in names
  assert all('4 devices in 2 processes' in out for _, out, _ in results)


def test_one_process_evaluates_the_two_process_checkpoints(two_processes, test_config, tmp_path):
  """The checkpoints two processes wrote restore in one process (this one, 4 devices: no launch
  needed; tests/test_train_end_to_end.py evaluates on 1 device)."""
  from memjax import evaluate

  trained_dir, two, _ = two_processes
  workdir = str(tmp_path / 'run')
  shutil.copytree(trained_dir, workdir)
  os.remove(os.path.join(workdir, 'summary.json'))
  evaluate.evaluate(test_config, workdir)
  one = _summary(workdir)
  assert (one['num_processes'], one['num_devices'], one['mode']) == (1, 4, 'evaluate')
  assert len(one['folds']) == len(two['folds']) == 2
  for a, b in zip(two['folds'], one['folds'], strict=True):
    assert a['spearman'] == pytest.approx(b['spearman'], abs=1e-5)
    assert a['checkpoint_step'] == b['checkpoint_step']


def test_an_error_in_one_process_stops_both(cache_dir, tmp_path):
  workdir, port = str(tmp_path / 'run'), _free_port()
  argvs = [_two_process_argv(workdir, port, i) for i in range(2)]
  argvs[1][1:2] = ['-c', FAILING_MAIN]  # python -c FAILING_MAIN --config=... (same flags)
  (code0, out0, t0), (code1, out1, t1) = _launch(
    argvs, _env(cache_dir, 2), tmp_path / 'logs', stop_all_on_failure=False
  )
  assert code1 == 1, out1[-5000:]
  assert 'RuntimeError: injected failure before the first step' in out1
  assert code0 == 1, out0[-5000:]
  assert (
    'memjax: error: stopping because process 1 failed: RuntimeError: injected failure before '
    'the first step' in out0
  )
  assert t0 - t1 < 20, (t0, t1)  # process 0 left its collective at once, not at a timeout
  assert not os.path.exists(os.path.join(workdir, 'summary.json'))


def test_docs_give_the_two_process_command():
  with open(os.path.join(ROOT, 'docs', 'several-hosts.md')) as f:
    readme = f.read()
  for process_id in (0, 1):
    assert TWO_PROCESS_COMMAND.format(process_id=process_id) in readme
  assert README_ENV in readme
