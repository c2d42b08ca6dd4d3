"""The machine's dense f32 matmul FLOP/s as JAX measures it; prints one JSON line.

python -m benchmarks.matmul_speed
"""

import json
import time

import jax
import jax.numpy as jnp

N, REPEATS = 4096, 10


def main() -> None:
  x = jnp.ones((N, N), jnp.float32)
  matmul = jax.jit(lambda a: a @ a)
  matmul(x).block_until_ready()
  best = float('inf')
  for _ in range(3):
    start = time.perf_counter()
    for _ in range(REPEATS):
      out = matmul(x)
    out.block_until_ready()
    best = min(best, (time.perf_counter() - start) / REPEATS)
  print(
    json.dumps({'matmul_flops_per_s': 2 * N**3 / best, 'n': N, 'backend': jax.default_backend()})
  )


if __name__ == '__main__':
  main()
