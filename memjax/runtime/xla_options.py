"""XLA compiler options of memjax's jitted steps and extractors.

On CPU, XLA (jaxlib 0.10) hands dots, convolutions, elementwise ops and reductions to YNNPACK
library fusions by default. For memjax's shapes its own emitters are faster on the 2-core CPU
`benchmarks/run.py` measures (which prints both settings side by side): the batch-16 training
step spent ~6 ms of ~12 in one YNNPACK dot, [16, 4096] x [4096, 512], that XLA's own dot does in
~0.5 ms; VGG16 fc7 ran as one YNNPACK graph at ~2.6 images/s against ~3.6 without it.
`compiler_options()` therefore turns the library fusions off on CPU; other backends get none.
"""

import jax

# True keeps XLA's default CPU library fusions; the benchmarks set it to measure that default.
CPU_LIBRARY_FUSIONS = False


def compiler_options() -> dict[str, str]:
  """Options for `jax.jit(..., compiler_options=...)` on the default backend."""
  if CPU_LIBRARY_FUSIONS or jax.default_backend() != 'cpu':
    return {}
  return {'xla_cpu_experimental_ynn_fusion_type': ''}  # an empty list: no YNNPACK fusions
