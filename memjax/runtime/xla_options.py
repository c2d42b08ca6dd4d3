"""XLA compiler options of memjax's jitted functions, from `config.cpu_library_fusions`.

On CPU, XLA hands dots, convolutions, elementwise ops and reductions to YNNPACK library fusions
by default. For memjax's functions (the training and evaluation steps of the fusion MLP, feature
extraction, prediction) XLA's own kernels are as fast or faster, so memjax compiles them without
library fusions unless told otherwise: 'auto' (memjax's choice, the default) and 'off' turn them
off, 'on' keeps XLA's default. The measurements behind the choice are in docs/performance.md
("XLA CPU library (YNNPACK) fusions"). Other backends get no options.
"""

import jax

from memjax.errors import InputError

SETTINGS = ('auto', 'on', 'off')
FUNCTIONS = ('train', 'eval', 'extract', 'predict')
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
  if function not in FUNCTIONS:
    raise ValueError(f'unknown function {function!r}; expected one of {FUNCTIONS}')
  if jax.default_backend() != 'cpu' or setting == 'on':
    return {}
  return dict(_OFF)
