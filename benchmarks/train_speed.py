"""Training throughput, interleaved in one process; prints one JSON line.

  python -m benchmarks.train_speed --batch_size=256 --frameworks=memjax,minimal --rounds=3
  python -m benchmarks.train_speed --batch_size=16 --frameworks=keras --rounds=1

Every framework trains the paper's fusion MLP as configs/k4.py defines it (branches 512/512,
fusion 256, dropout 0.5, ReLU, K=4 softmax, Adam 1e-3, float32) on 58,741 rows of 4096 + 1024
features:
* `memjax`: memjax's training path as `train_fold` runs it on feature arrays that fit the
  devices (memjax/device_table.py): the arrays put on the device once, each jitted, scanned call
  of memjax/steps.py given only the row numbers of its `steps_per_call` batches;
* `memjax_host`: memjax's host path (`config.data.device_resident='off'`, and images decoded on
  the fly): each chunk's rows gathered on a background thread -> sharded global arrays;
* `minimal`: the smallest honest JAX loop (`minimal_loop`, ~25 lines): the same Flax model and
  Optax optimiser, the data resident on the device, each `lax.scan` call gathering its batches
  by index on the device;
* `keras`: Keras 3 `model.fit` with its defaults (TensorFlow backend);
* `memjax_step`: memjax's compiled step alone, on one chunk already on the device (what memjax
  would do without any input cost).
The frameworks of one process take turns: each measures `--seconds`, then the next, for
`--rounds` rounds, so a busy machine slows them alike and their ratios hold. Examples/s exclude
the first (compiling) calls. `--fusions` compiles memjax and the minimal loop with XLA's CPU
library (YNNPACK) fusions on or off, passed as explicit compiler options.
"""

import functools
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list(
  'frameworks', ['memjax', 'minimal'], 'memjax, memjax_host, memjax_step, minimal and/or keras.'
)
flags.DEFINE_integer('batch_size', 16, 'Global batch size.')
flags.DEFINE_float('seconds', 5.0, 'Measured seconds per framework per round.')
flags.DEFINE_integer('rounds', 3, 'Rounds of taking turns.')
flags.DEFINE_integer('rows', 58_741, 'Rows of the feature arrays (LaMem: 58,741).')
flags.DEFINE_enum('fusions', 'off', ['on', 'off'], "XLA's CPU library fusions (memjax, minimal).")

CNN, SEM, K = 4096, 1024, 4
FUSIONS_OFF = {'xla_cpu_experimental_ynn_fusion_type': ''}  # an empty list: no YNNPACK fusions


def compiler_options(fusions: str) -> dict:
  """Explicit XLA options: {} is XLA's default (library fusions on)."""
  import jax

  return dict(FUSIONS_OFF) if fusions == 'off' and jax.default_backend() == 'cpu' else {}


def data(rows: int) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(0)
  cnn = np.maximum(rng.standard_normal((rows, CNN), np.float32) - 0.7, 0)
  sem = rng.standard_normal((rows, SEM), np.float32)
  sem /= np.linalg.norm(sem, axis=1, keepdims=True)
  label = rng.integers(0, K, rows).astype(np.int32)
  return {'cnn': cnn, 'semantic': sem, 'label': label, 'score': np.zeros(rows, np.float32)}


def steps_per_call(batch_size: int) -> int:
  """configs/k4.py's steps per jitted call at batch 16; 10 at larger batches."""
  from configs import k4

  return k4.get_config().steps_per_call if batch_size <= 16 else 10


def minimal_loop(model, tx, arrays, batch_size, num_steps, options):
  """The minimal jitted `lax.scan` loop: returns `run()`, which trains `num_steps` steps and
  returns their losses (device-resident data, batches gathered on the device)."""
  import jax
  import jax.numpy as jnp
  import optax

  dev = {k: jax.device_put(arrays[k]) for k in ('cnn', 'semantic', 'label')}
  num_rows = dev['label'].shape[0]
  calls_per_epoch = num_rows // (num_steps * batch_size)

  def step(carry, rows):
    params, opt_state, key = carry
    key, dropout = jax.random.split(key)
    x = {'cnn': dev['cnn'][rows], 'semantic': dev['semantic'][rows]}

    def loss_fn(p):
      logits = model.apply({'params': p}, x, train=True, rngs={'dropout': dropout})
      return optax.softmax_cross_entropy_with_integer_labels(logits, dev['label'][rows]).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state, key), loss

  @functools.partial(jax.jit, donate_argnums=0, compiler_options=options)
  def steps(carry, rows):
    return jax.lax.scan(step, carry, rows)

  x = {'cnn': jnp.zeros((1, CNN)), 'semantic': jnp.zeros((1, SEM))}
  params = model.init(jax.random.PRNGKey(0), x, train=False)['params']
  carry = [(params, tx.init(params), jax.random.PRNGKey(1))]
  rng, order, done = np.random.default_rng(0), None, [0]

  def run():
    nonlocal order
    epoch_call = done[0] % calls_per_epoch
    if epoch_call == 0:  # a new epoch: a new order, on the device
      order = rng.permutation(num_rows)[: calls_per_epoch * num_steps * batch_size]
      order = jax.device_put(order.astype(np.int32).reshape(-1, num_steps, batch_size))
    carry[0], losses = steps(carry[0], order[epoch_call])
    done[0] += 1
    return losses

  return run


def memjax_loop(model, tx, arrays, batch_size, num_steps, options, path='table'):
  """memjax's training path: `run()` trains the next chunk of `num_steps` steps. `path`:
  'table' (rows on the device, memjax's default for feature arrays), 'host' (chunks gathered on
  the host) or 'step' (the compiled step alone: one chunk, already on the device, over and
  over)."""
  import jax

  from benchmarks import memjax_api
  from memjax import device_table, input_pipeline, parallel

  mesh = parallel.make_mesh()
  on_table = path == 'table'
  state, train_fn, args = memjax_api.train_setup(model, tx, mesh, options, on_table=on_table)
  share = parallel.process_share(batch_size)
  indices = np.arange(arrays['label'].shape[0])
  order = dict(batch_size=batch_size, steps_per_call=num_steps, seed=(0, 0), first_step=0)
  box = [state]

  def chunks():
    for epoch in range(10**6):
      if on_table:
        for rows in input_pipeline.train_row_chunks(indices, epoch=epoch, share=share, **order):
          yield parallel.to_global({'rows': rows}, mesh, 1)['rows']
      else:
        for chunk in input_pipeline.train_chunks(
          arrays, indices, epoch=epoch, share=share, **order
        ):
          yield parallel.to_global(chunk, mesh, 1)

  chunk_iter = chunks()
  resident = next(chunks()) if path == 'step' else None
  table = device_table.put(arrays, mesh) if on_table else None

  def run():
    chunk = resident if path == 'step' else next(chunk_iter)
    box[0], sums = train_fn(box[0], chunk, *args, *([table] if on_table else []))
    return sums

  one_batch = parallel.to_global({k: v[:batch_size] for k, v in arrays.items()}, mesh, 0)
  flops = memjax_api.step_flops(model, tx, mesh, options, state, one_batch, args)
  run.flops_per_example = flops / batch_size
  run.devices = jax.device_count()
  return run


def interleave(runs: dict, steps: dict, seconds: float, rounds: int) -> dict[str, list[float]]:
  """Examples/s of each `runs[name]()` (`steps[name]` examples per call), taking turns."""
  import jax

  for run in runs.values():  # compile and warm up
    jax.block_until_ready(run())
    jax.block_until_ready(run())
  rates = {name: [] for name in runs}
  for _ in range(rounds):
    for name, run in runs.items():
      done, start = 0, time.perf_counter()
      while time.perf_counter() - start < seconds:
        out = run()
        done += steps[name]
      jax.block_until_ready(out)
      rates[name].append(done / (time.perf_counter() - start))
  return rates


def keras_speed(arrays, batch_size: int, seconds: float) -> float:
  os.environ.setdefault('KERAS_BACKEND', 'tensorflow')
  import keras

  inputs = [keras.Input((CNN,), name='cnn'), keras.Input((SEM,), name='semantic')]
  branches = [
    keras.layers.Dropout(0.5)(keras.layers.Dense(512, activation='relu')(x)) for x in inputs
  ]
  x = keras.layers.Concatenate()(branches)
  x = keras.layers.Dropout(0.5)(keras.layers.Dense(256, activation='relu')(x))
  model = keras.Model(inputs, keras.layers.Dense(K, activation='softmax')(x))
  model.compile(keras.optimizers.Adam(1e-3), 'sparse_categorical_crossentropy')

  class Timer(keras.callbacks.Callback):
    def __init__(self):
      super().__init__()
      self.start, self.batches = None, 0

    def on_train_batch_end(self, batch, logs=None):
      if self.start is None:
        self.start = time.perf_counter()  # after the first (compiling) batch
        return
      self.batches += 1
      if time.perf_counter() - self.start > seconds:
        self.model.stop_training = True

  timer = Timer()
  rows = arrays['label'].shape[0]
  epochs = 1 + int(seconds * 10_000 / rows) + 1
  model.fit(
    [arrays['cnn'], arrays['semantic']],
    arrays['label'],
    batch_size=batch_size,
    epochs=epochs,
    verbose=0,
    callbacks=[timer],
  )
  return timer.batches * batch_size / (time.perf_counter() - timer.start)


def main(argv):
  del argv
  arrays = data(FLAGS.rows)
  b = FLAGS.batch_size
  out = {'batch_size': b, 'fusions': FLAGS.fusions, 'rounds': {}}
  jax_names = [f for f in FLAGS.frameworks if f != 'keras']
  if jax_names:
    from configs import k4
    from memjax import models, optimizers

    config = k4.get_config()
    model = models.create_model(config)
    tx = optimizers.create_optimizer(config.optimizer, 10**6, 10**3)
    t = steps_per_call(b)
    options = compiler_options(FLAGS.fusions)
    build = {
      'memjax': memjax_loop,
      'memjax_host': functools.partial(memjax_loop, path='host'),
      'memjax_step': functools.partial(memjax_loop, path='step'),
      'minimal': minimal_loop,
    }
    runs = {n: build[n](model, tx, arrays, b, t, options) for n in jax_names}
    out['rounds'] = interleave(runs, {n: t * b for n in runs}, FLAGS.seconds, FLAGS.rounds)
    out['steps_per_call'] = t
    if 'memjax' in runs:
      out['flops_per_example'] = runs['memjax'].flops_per_example
      out['devices'] = runs['memjax'].devices
  if 'keras' in FLAGS.frameworks:
    out['rounds']['keras'] = [keras_speed(arrays, b, FLAGS.seconds) for _ in range(FLAGS.rounds)]
  out['examples_per_s'] = {n: statistics.median(r) for n, r in out['rounds'].items()}
  if {'memjax', 'minimal'} <= set(out['rounds']):
    pairs = zip(out['rounds']['memjax'], out['rounds']['minimal'], strict=True)
    out['memjax_over_minimal'] = [m / n for m, n in pairs]
  print(json.dumps(out))


if __name__ == '__main__':
  app.run(main)
