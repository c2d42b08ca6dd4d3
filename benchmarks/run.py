"""memjax's performance table: every figure measured in this run, on this machine.

  .venv/bin/python -m benchmarks.run [--quick] [--compare_xla]

Rows (each process after the other, so they do not compete; figures that are compared are
measured in turns inside one process, `--rounds` times, and reported per round):
* training examples/s of memjax and of the minimal jitted `lax.scan` loop (device-resident data,
  the same model, optimiser and batch; benchmarks/train_speed.py), batch 16 and 256, taking
  turns in one process, and their ratio per round; Keras 3 `model.fit` of the same network in
  its own process, for reference;
* the machine's matmul FLOP/s (best of XLA with and without its CPU library fusions and NumPy's
  BLAS) and memjax's achieved training FLOP/s (FLOPs of the compiled step from XLA's cost
  analysis) at batch 256, as a ratio;
* VGG16 fc7 extraction images/s of memjax and of `keras.applications.VGG16(weights=None)`, and
  memjax's EfficientNet-Lite0;
* with `--compare_xla`, XLA's CPU library (YNNPACK) fusions on against off for each jitted
  function (benchmarks/fusion_speed.py): the table behind `config.cpu_library_fusions='auto'`;
* wall time, peak resident memory and per-fold test Spearman of the default main job
  (configs/k4.py), and wall time and peak resident memory of a 5-fold
  K=4 run on LaMem-sized synthetic data read from a float32 feature store (1 epoch per fold,
  as the full 10 would take ~30 min here), with peak memory / store size.
`--quick` skips the two whole-job rows. The table goes to stdout and, as JSON, to
`benchmarks/results.json` unless `--out` says otherwise.
"""

import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable
FLAGS = flags.FLAGS
flags.DEFINE_bool('quick', False, 'Skip the whole-job wall-time/memory rows.')
flags.DEFINE_bool(
  'compare_xla', False, "Add the table of XLA's CPU library fusions on/off per function."
)
flags.DEFINE_float('seconds', 10.0, 'Measured seconds per throughput figure (per round).')
flags.DEFINE_integer('rounds', 3, 'Rounds of taking turns for the compared figures.')
flags.DEFINE_string('out', os.path.join(ROOT, 'benchmarks', 'results.json'), 'JSON output.')

TARGETS = {'train16_ratio': 0.95, 'train256_ratio': 0.95, 'vgg16_ratio': 1.0}
EXTRACT_RUNS = {
  'memjax': ['--framework=memjax'],
  'keras': ['--framework=keras'],
  'memjax_efficientnet': ['--framework=memjax_efficientnet'],
}


def _json(args: list[str]) -> dict:
  """Runs `python -m ARGS` and parses the JSON line it prints last."""
  proc = subprocess.run([PYTHON, '-m', *args], cwd=ROOT, capture_output=True, text=True)
  if proc.returncode:
    raise RuntimeError(f'{" ".join(args)} failed:\n{proc.stderr[-3000:]}')
  return json.loads(proc.stdout.strip().splitlines()[-1])


def _job(args: list[str]) -> tuple[float, float]:
  """(wall seconds, peak RSS bytes) of a child process."""
  with tempfile.TemporaryFile() as log:
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=log)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
      log.seek(0)
      raise RuntimeError(f'{" ".join(args)} failed:\n{log.read().decode()[-3000:]}')
  return wall, usage.ru_maxrss * 1024


_MAKE_STORE = """
import sys
sys.path.insert(0, '.')
from configs import k4
from memjax import datasets
config = k4.get_config()
config.data.synthetic.num_examples = 58741
config.data.features_dir = sys.argv[1]
datasets.load(config)
"""


def measure(seconds: float, rounds: int, quick: bool, compare_xla: bool) -> dict:
  r = {
    'machine': f'{platform.machine()}, {os.cpu_count()} cores',
    'python': platform.python_version(),
    'rounds': rounds,
  }
  r['matmul'] = _json(['benchmarks.matmul_speed'])
  for batch in (16, 256):
    common = [f'--batch_size={batch}', f'--seconds={seconds}', f'--rounds={rounds}']
    r[f'train{batch}'] = _json(['benchmarks.train_speed', '--frameworks=memjax,minimal', *common])
    keras = _json(['benchmarks.train_speed', '--frameworks=keras', *common])
    r[f'train{batch}']['rounds']['keras'] = keras['rounds']['keras']
    r[f'train{batch}']['examples_per_s']['keras'] = keras['examples_per_s']['keras']
  for name, args in EXTRACT_RUNS.items():
    r[f'vgg16_{name}'] = _json(['benchmarks.extract_speed', *args, f'--seconds={seconds}'])
  if compare_xla:
    r['fusions'] = _json(
      ['benchmarks.fusion_speed', f'--seconds={seconds / 2}', f'--rounds={rounds}']
    )
  if not quick:
    with tempfile.TemporaryDirectory() as tmp:
      main = [PYTHON, 'main.py', '--config=configs/k4.py']
      wall, rss = _job(main + [f'--workdir={tmp}/k4'])
      with open(os.path.join(tmp, 'k4', 'summary.json')) as f:
        spearman = [fold['spearman'] for fold in json.load(f)['folds']]
      r['main_job'] = {'wall_s': wall, 'peak_rss_bytes': rss, 'spearman': spearman}
      lamem = [
        '--config.data.synthetic.num_examples=58741',
        f'--config.data.features_dir={tmp}/store',
      ]
      _job([PYTHON, '-c', _MAKE_STORE, f'{tmp}/store'])  # writes the store, not measured
      store_bytes = sum(
        os.path.getsize(os.path.join(tmp, 'store', f)) for f in ('cnn.npy', 'semantic.npy')
      )
      wall, rss = _job(main + [f'--workdir={tmp}/lamem', '--config.num_epochs=1', *lamem])
      r['lamem_run'] = {
        'wall_s': wall,
        'peak_rss_bytes': rss,
        'store_bytes': store_bytes,
        'epochs': 1,
      }
  return r


FUSION_LABELS = {
  'train16': 'train step, batch 16 (100 steps/call)',
  'train256': 'train step, batch 256 (10 steps/call)',
  'eval1024': 'eval step, batch 1024',
  'vgg16': 'VGG16 fc7 extraction',
  'effnet': 'EfficientNet-Lite0 extraction',
  'matmul': 'matmul 4096^3',
}


def table(r: dict) -> str:
  """The markdown table, with targets where the issue sets them."""

  def ratio(a, b):
    return a / b if b else float('nan')

  mm = r['matmul']['matmul_flops_per_s']
  rows = [
    (
      'matmul f32 (4096^3), GFLOP/s: best of XLA fusions on / off / NumPy BLAS',
      f'{mm / 1e9:.0f} ({r["matmul"]["xla_default_flops_per_s"] / 1e9:.0f} / '
      f'{r["matmul"]["xla_fusions_off_flops_per_s"] / 1e9:.0f} / '
      f'{r["matmul"]["numpy_flops_per_s"] / 1e9:.0f})',
      '',
      '',
    )
  ]
  for batch in (16, 256):
    t = r[f'train{batch}']
    rate = t['examples_per_s']
    per_round = ' / '.join(f'{x:.2f}' for x in t['memjax_over_minimal'])
    rows.append(
      (
        f'training, batch {batch}, examples/s (median of {len(t["memjax_over_minimal"])}): '
        'memjax / minimal scan loop / Keras 3',
        f'{rate["memjax"]:,.0f} / {rate["minimal"]:,.0f} / {rate["keras"]:,.0f}',
        f'{per_round} (memjax / minimal, each round)',
        f'>= {TARGETS[f"train{batch}_ratio"]}',
      )
    )
  t = r['train256']
  achieved = t['examples_per_s']['memjax'] * t['flops_per_example']
  rows.append(
    (
      'training, batch 256, achieved / matmul FLOP/s',
      f'{achieved / 1e9:.0f} / {mm / 1e9:.0f} GFLOP/s',
      f'{ratio(achieved, mm):.2f}',
      'reported',
    )
  )
  vm, vk = r['vgg16_memjax']['images_per_s'], r['vgg16_keras']['images_per_s']
  ve = r['vgg16_memjax_efficientnet']['images_per_s']
  rows += [
    (
      f'VGG16 extraction, batch {r["vgg16_memjax"]["batch_size"]}, images/s: memjax / Keras',
      f'{vm:.2f} / {vk:.2f}',
      f'{ratio(vm, vk):.2f}x',
      '>= 1.0x',
    ),
    ('EfficientNet-Lite0 extraction (memjax), images/s', f'{ve:.1f}', '', ''),
  ]
  if 'fusions' in r:
    for name, f in r['fusions']['functions'].items():
      rows.append(
        (
          f'XLA CPU library fusions on / off: {FUSION_LABELS[name]}',
          ' / '.join(f'{x:.2f}' for x in f['on_over_off']),
          f'{f["median_on_over_off"]:.2f}',
          '',
        )
      )
  if 'main_job' in r:
    j = r['main_job']
    rows.append(
      (
        'default main job (configs/k4.py): wall, peak RSS',
        f'{j["wall_s"] / 60:.1f} min, {j["peak_rss_bytes"] / 2**30:.2f} GiB',
        '',
        '< 10 min',
      )
    )
    if 'spearman' in j:
      rows.append(
        (
          'default main job: test Spearman per fold',
          ' / '.join(f'{x:.6f}' for x in j['spearman']),
          '',
          '',
        )
      )
    j = r['lamem_run']
    rows.append(
      (
        f'LaMem-sized 5-fold K=4 run ({j["epochs"]} epoch/fold): wall, peak RSS / store',
        f'{j["wall_s"] / 60:.1f} min, {j["peak_rss_bytes"] / 2**30:.2f} / '
        f'{j["store_bytes"] / 2**30:.2f} GiB',
        f'{ratio(j["peak_rss_bytes"], j["store_bytes"]):.2f}',
        '<= 2.5',
      )
    )
  lines = [
    f'Machine: {r["machine"]}; backend {r["matmul"]["backend"]}; Python {r["python"]}',
    '',
    '| figure | measured | ratio | target |',
    '| --- | --- | --- | --- |',
  ]
  lines += [f'| {a} | {b} | {c} | {d} |' for a, b, c, d in rows]
  return '\n'.join(lines)


def main(argv):
  del argv
  r = measure(FLAGS.seconds, FLAGS.rounds, FLAGS.quick, FLAGS.compare_xla)
  with open(FLAGS.out, 'w') as f:
    json.dump(r, f, indent=2)
  sys.stdout.write(table(r) + '\n')


if __name__ == '__main__':
  app.run(main)
