"""XLA compiler options of memjax's jitted functions, chosen per function from the config.

On CPU, XLA (jaxlib 0.10) hands dots, convolutions, elementwise ops and reductions to YNNPACK
library fusions by default. Whether that wins depends on the function: on the 2-core CPU
`benchmarks/run.py` measures, the batch-16 training step spent ~6 ms of ~12 in one YNNPACK dot
([16, 4096] x [4096, 512]) that XLA's own dot does in ~0.5 ms, and VGG16 fc7 ran at ~2.6
images/s with it against ~3.6 without; a 4096^3 matmul runs faster with it (~125 against ~81
GFLOP/s). `config.cpu_library_fusions` chooses: 'on' (XLA's default), 'off', or 'auto', which
looks the function up in `AUTO`, the measured choice (docs/performance.md has the table).
Other backends get no options.
"""

import jax

from memjax.errors import InputError

SETTINGS = ('auto', 'on', 'off')
FUNCTIONS = ('train', 'eval', 'extract', 'predict')
# Library fusions on (True) or off for each function under 'auto', measured by
# `python -m benchmarks.run` side by side on a 2-core CPU.
AUTO = {'train': False, 'eval': False, 'extract': False, 'predict': False}
_OFF = {'xla_cpu_experimental_ynn_fusion_type': ''}  # an empty list: no YNNPACK fusions


def compiler_options(function: str, setting: str = 'auto') -> dict[str, str]:
  """Options for `jax.jit(..., compiler_options=...)` of `function` on the default backend.

  Args:
    function: one of `FUNCTIONS`.
    setting: `config.cpu_library_fusions`.

  Raises:
    InputError: an unknown setting.
  """
  if setting not in SETTINGS:
    raise InputError(f'config.cpu_library_fusions must be one of {SETTINGS}, got {setting!r}.')
  if function not in AUTO:
    raise ValueError(f'unknown function {function!r}; expected one of {FUNCTIONS}')
  if jax.default_backend() != 'cpu':
    return {}
  fusions = AUTO[function] if setting == 'auto' else setting == 'on'
  return {} if fusions else dict(_OFF)
