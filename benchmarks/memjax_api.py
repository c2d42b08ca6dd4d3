"""memjax's train and eval steps, compiled with explicit XLA options, for the benchmarks.

Builds the steps the way memjax/train.py does, but with the compiler options a benchmark
chooses, so that the benchmarks depend on no module-level switch. Works with the typed steps
API (`FoldConsts`, `jit_train_steps(model, tx, mesh, compiler_options=...)`; the constants and the
train state in `steps` or in their own modules) and with the earlier one (a `consts` dict, options
fixed inside memjax).
"""

import functools

import jax
import numpy as np

from memjax import parallel, steps

try:
  from memjax import fold_consts, train_state
except ImportError:  # before the steps were split: constants and state in `steps`
  fold_consts = train_state = steps

DIMS = {'cnn': 4096, 'semantic': 1024}
THRESHOLDS, VALUES = [0.68, 0.77, 0.85], [0.68, 0.77, 0.85, 1.0]
TYPED = hasattr(fold_consts, 'FoldConsts')


def _consts(mesh):
  if TYPED:
    shift = {n: np.zeros(d, np.float32) for n, d in DIMS.items()}
    scale = {n: np.ones(d, np.float32) for n, d in DIMS.items()}
    consts = fold_consts.host_consts(THRESHOLDS, VALUES, shift, scale)
    return (parallel.replicate(consts, mesh), None)
  consts = {
    'key': np.asarray(jax.random.PRNGKey(1)),
    'thresholds': np.asarray(THRESHOLDS, np.float32),
    'values': np.asarray(VALUES, np.float32),
  }
  return (parallel.replicate(consts, mesh),)


def _jit_train(model, tx, mesh, options, scan=True, on_table=False):
  if on_table:  # the device-resident path (memjax/device_table.py): typed API only
    return steps.jit_train_steps(model, tx, mesh, on_table=True, compiler_options=options)
  if TYPED:
    return steps.jit_train_steps(model, tx, mesh, scan=scan, compiler_options=options)
  rep = parallel.replicated(mesh)
  return jax.jit(
    functools.partial(steps.train_steps if scan else steps.train_step, model=model),
    in_shardings=(rep, parallel.batch_sharding(mesh, 1 if scan else 0), rep),
    out_shardings=(rep, rep),
    donate_argnums=0,
    compiler_options=options,
  )


def train_setup(model, tx, mesh, options: dict, on_table: bool = False):
  """(fresh state, scanned train fn, its trailing arguments): `fn(state, chunk, *args)`; with
  `on_table`, `fn(state, rows, *args, table)`."""
  init_key, dropout_key = jax.random.PRNGKey(0), jax.random.PRNGKey(1)
  if TYPED:
    state = train_state.jit_create_state(model, tx, DIMS, mesh)(init_key, dropout_key)
  else:
    state = steps.create_state(model, tx, DIMS, parallel.replicate(init_key, mesh), mesh)
  return state, _jit_train(model, tx, mesh, options, on_table=on_table), _consts(mesh)


def step_flops(model, tx, mesh, options: dict, state, batch, args) -> float:
  """FLOPs of one compiled training step on `batch` (XLA's cost analysis)."""
  one = _jit_train(model, tx, mesh, options, scan=False)
  cost = one.lower(state, batch, *args).compile().cost_analysis()
  return float((cost[0] if isinstance(cost, list) else cost)['flops'])


def eval_setup(model, mesh, options: dict):
  """(eval fn, its trailing arguments): `fn(params, batch, *args)`."""
  if TYPED:
    fn = steps.jit_eval_step(model, mesh, compiler_options=options)
  else:
    rep = parallel.replicated(mesh)
    fn = jax.jit(
      functools.partial(steps.eval_step, model=model),
      in_shardings=(rep, parallel.batch_sharding(mesh), rep),
      out_shardings=(parallel.batch_sharding(mesh), rep),
      compiler_options=options,
    )
  return fn, _consts(mesh)
