"""memjax's performance table: every figure measured in this run, on this machine.

  .venv/bin/python -m benchmarks.run [--quick]

Rows (each in its own process, one after another, so they do not compete):
* training examples/s of memjax and of a Keras 3 model of the same network, batch 16 and 256,
  on LaMem-sized data (58,741 x (4096 + 1024)), and their ratio; also memjax compiled with XLA's
  default CPU library fusions, which memjax/xla_options.py turns off;
* the machine's matmul FLOP/s (best of XLA and NumPy's BLAS) and memjax's achieved training
  FLOP/s (FLOPs of the compiled step from XLA's cost analysis) at batch 256, as a utilisation;
* VGG16 fc7 extraction images/s of memjax (both XLA settings) and of
  `keras.applications.VGG16(weights=None)`, and memjax's EfficientNet-Lite0;
* wall time and peak resident memory of the default main job (configs/k4.py), and of a 5-fold
  K=4 run on LaMem-sized synthetic data read from a float32 feature store (1 epoch per fold,
  as the full 10 would take ~30 min here), with peak memory / store size.
`--quick` skips the two whole-job rows; `--compare_xla` adds the XLA-default rows. The table
goes to stdout and, as JSON, to `benchmarks/results.json` unless `--out` says otherwise.
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
  'compare_xla', False, "Also measure memjax compiled with XLA's default CPU library fusions."
)
flags.DEFINE_float('seconds', 10.0, 'Measured seconds per throughput figure.')
flags.DEFINE_string('out', os.path.join(ROOT, 'benchmarks', 'results.json'), 'JSON output.')

TARGETS = {
  'train16_ratio': 3.0,
  'train256_ratio': 3.0,
  'utilisation256': 0.8,
  'vgg16_ratio': 1.0,
  'lamem_memory_ratio': 2.5,
}


# name -> arguments; `memjax_xla_default` is memjax compiled with XLA's default CPU library
# fusions, the setting memjax/xla_options.py turns off.
TRAIN_RUNS = {
  'memjax': ['--framework=memjax'],
  'memjax_xla_default': ['--framework=memjax', '--xla_default'],
  'keras': ['--framework=keras'],
}
EXTRACT_RUNS = {
  'memjax': ['--framework=memjax'],
  'memjax_xla_default': ['--framework=memjax', '--xla_default'],
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


def measure(seconds: float, quick: bool, compare_xla: bool) -> dict:
  r = {
    'machine': f'{platform.machine()}, {os.cpu_count()} cores',
    'python': platform.python_version(),
  }
  r['matmul'] = _json(['benchmarks.matmul_speed'])
  for batch in (16, 256):
    for name, args in TRAIN_RUNS.items():
      if name.endswith('xla_default') and not compare_xla:
        continue
      r[f'{name}{batch}'] = _json(
        ['benchmarks.train_speed', *args, f'--batch_size={batch}', f'--seconds={seconds}']
      )
  for name, args in EXTRACT_RUNS.items():
    if name.endswith('xla_default') and not compare_xla:
      continue
    r[f'vgg16_{name}'] = _json(['benchmarks.extract_speed', *args, f'--seconds={seconds}'])
  if not quick:
    with tempfile.TemporaryDirectory() as tmp:
      main = [PYTHON, 'main.py', '--config=configs/k4.py']
      wall, rss = _job(main + [f'--workdir={tmp}/k4'])
      r['main_job'] = {'wall_s': wall, 'peak_rss_bytes': rss}
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


def table(r: dict) -> str:
  """The markdown table, with targets where the issue sets them."""

  def ratio(a, b):
    return a / b if b else float('nan')

  mm = r['matmul']['matmul_flops_per_s']
  rows = [
    (
      'matmul f32 (4096^3), GFLOP/s: best of XLA default / XLA memjax options / NumPy BLAS',
      f'{mm / 1e9:.0f} ({r["matmul"]["xla_default_flops_per_s"] / 1e9:.0f} / '
      f'{r["matmul"]["xla_memjax_flops_per_s"] / 1e9:.0f} / '
      f'{r["matmul"]["numpy_flops_per_s"] / 1e9:.0f})',
      '',
      '',
    )
  ]
  for batch in (16, 256):
    m, k = r[f'memjax{batch}']['examples_per_s'], r[f'keras{batch}']['examples_per_s']
    rows.append(
      (
        f'training, batch {batch}, examples/s: memjax / Keras',
        f'{m:,.0f} / {k:,.0f}',
        f'{ratio(m, k):.2f}x',
        f'>= {TARGETS[f"train{batch}_ratio"]}x',
      )
    )
    if f'memjax_xla_default{batch}' in r:
      d = r[f'memjax_xla_default{batch}']['examples_per_s']
      rows.append(
        (
          f'training, batch {batch}: memjax with XLA default CPU fusions / Keras',
          f'{d:,.0f} / {k:,.0f}',
          f'{ratio(d, k):.2f}x',
          '',
        )
      )
  m256 = r['memjax256']
  achieved = m256['examples_per_s'] * m256['flops_per_example']
  rows.append(
    (
      'training, batch 256, achieved / matmul FLOP/s',
      f'{achieved / 1e9:.0f} / {mm / 1e9:.0f} GFLOP/s',
      f'{ratio(achieved, mm):.2f}',
      f'>= {TARGETS["utilisation256"]}',
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
  if 'vgg16_memjax_xla_default' in r:
    vd = r['vgg16_memjax_xla_default']['images_per_s']
    rows.append(
      (
        'VGG16 extraction: memjax with XLA default CPU fusions / Keras',
        f'{vd:.2f} / {vk:.2f}',
        f'{ratio(vd, vk):.2f}x',
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
  r = measure(FLAGS.seconds, FLAGS.quick, FLAGS.compare_xla)
  with open(FLAGS.out, 'w') as f:
    json.dump(r, f, indent=2)
  sys.stdout.write(table(r) + '\n')


if __name__ == '__main__':
  app.run(main)
