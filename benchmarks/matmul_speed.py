"""The machine's dense f32 matmul FLOP/s; prints one JSON line.

python -m benchmarks.matmul_speed

A 4096^3 matmul measured three ways: XLA with its default CPU library (YNNPACK) fusions, XLA
with them off (`{'xla_cpu_experimental_ynn_fusion_type': ''}`), and NumPy's BLAS.
The machine's figure, `matmul_flops_per_s`, is the best of the three, so a utilisation ratio
against it is not flattered by a slow reference.
"""

import functools
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

N, REPEATS = 4096, 10


def _best_seconds(run) -> float:
  run()
  best = float('inf')
  for _ in range(3):
    start = time.perf_counter()
    for _ in range(REPEATS):
      out = run()
    jax.block_until_ready(out)
    best = min(best, (time.perf_counter() - start) / REPEATS)
  return best


def main() -> None:
  x = jnp.ones((N, N), jnp.float32)
  flops = 2 * N**3
  result = {}
  off = {'xla_cpu_experimental_ynn_fusion_type': ''}
  for name, options in (('xla_default', {}), ('xla_fusions_off', off)):
    matmul = jax.jit(lambda a: a @ a, compiler_options=options)
    result[f'{name}_flops_per_s'] = flops / _best_seconds(functools.partial(matmul, x))
  a = np.ones((N, N), np.float32)
  result['numpy_flops_per_s'] = flops / _best_seconds(lambda: a @ a)
  result['matmul_flops_per_s'] = max(result.values())
  print(json.dumps({**result, 'n': N, 'backend': jax.default_backend()}))


if __name__ == '__main__':
  main()
