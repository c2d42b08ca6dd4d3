"""Training throughput of one framework on LaMem-sized data; prints one JSON line.

  python -m benchmarks.train_speed --framework=memjax --batch_size=16 --seconds=20
  python -m benchmarks.train_speed --framework=keras --batch_size=16 --seconds=20

Both train the paper's fusion MLP as configs/k4.py defines it (branches 512/512, fusion 256,
dropout 0.5, ReLU, K=4 softmax, Adam 1e-3, float32) on 58,741 rows of 4096 + 1024 features.
memjax runs its real training path (tf.data chunks -> sharded global batch -> jitted scanned
steps); Keras 3 runs `model.fit` with its defaults. Examples/s excludes the first (compiling)
pass.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_enum('framework', 'memjax', ['memjax', 'keras'], 'What to measure.')
flags.DEFINE_integer('batch_size', 16, 'Global batch size.')
flags.DEFINE_float('seconds', 20.0, 'Measured time (after warm-up).')
flags.DEFINE_integer('rows', 58_741, 'Rows of the feature arrays (LaMem: 58,741).')
flags.DEFINE_bool('xla_default', False, "memjax with XLA's default CPU library fusions.")

CNN, SEM, K = 4096, 1024, 4


def _data(rows: int):
  rng = np.random.default_rng(0)
  cnn = np.maximum(rng.standard_normal((rows, CNN), np.float32) - 0.7, 0)
  sem = rng.standard_normal((rows, SEM), np.float32)
  sem /= np.linalg.norm(sem, axis=1, keepdims=True)
  label = rng.integers(0, K, rows).astype(np.int32)
  return cnn, sem, label


def _steps_per_call(batch_size: int) -> int:
  from configs import k4

  return k4.get_config().steps_per_call if batch_size <= 16 else 10


def memjax_speed(batch_size: int, seconds: float, rows: int) -> dict:
  import jax

  from configs import k4
  from memjax import input_pipeline, models, optimizers, parallel, steps
  from memjax.runtime import xla_options

  xla_options.CPU_LIBRARY_FUSIONS = FLAGS.xla_default
  config = k4.get_config()
  cnn, sem, label = _data(rows)
  arrays = {'cnn': cnn, 'semantic': sem, 'label': label, 'score': np.zeros(rows, np.float32)}
  mesh = parallel.make_mesh()
  model = models.create_model(config)
  tx = optimizers.create_optimizer(config.optimizer, 10**6, 10**3)
  dims = {'cnn': CNN, 'semantic': SEM}
  state = steps.create_state(model, tx, dims, parallel.replicate(jax.random.PRNGKey(0), mesh), mesh)
  consts = parallel.replicate(
    {
      'key': np.asarray(jax.random.PRNGKey(1)),
      'thresholds': np.array([0.68, 0.77, 0.85], 'f4'),
      'values': np.array([0.68, 0.77, 0.85, 1.0], 'f4'),
    },
    mesh,
  )
  train_fn = steps.jit_train_steps(model, mesh)
  one = steps.jit_train_steps(model, mesh, scan=False)
  batch = parallel.to_global({k: v[:batch_size] for k, v in arrays.items()}, mesh, 0)
  flops = one.lower(state, batch, consts).compile().cost_analysis()
  flops = flops[0] if isinstance(flops, list) else flops
  share = parallel.process_share(batch_size)
  done, epoch, start = 0, 0, None
  while True:
    chunks = input_pipeline.train_chunks(
      arrays,
      np.arange(rows),
      batch_size=batch_size,
      steps_per_call=_steps_per_call(batch_size),
      seed=(0, 0),
      epoch=epoch,
      first_step=0,
      share=share,
    )
    for chunk in chunks:
      state, metrics = train_fn(state, parallel.to_global(chunk, mesh, 1), consts)
      if start is None:  # first call compiles
        jax.block_until_ready(metrics)
        start = time.perf_counter()
        continue
      done += chunk['label'].size
      if time.perf_counter() - start > seconds:
        jax.block_until_ready(metrics)
        elapsed = time.perf_counter() - start
        return {
          'examples_per_s': done / elapsed,
          'flops_per_example': flops['flops'] / batch_size,
          'devices': jax.device_count(),
        }
    epoch += 1


def keras_speed(batch_size: int, seconds: float, rows: int) -> dict:
  os.environ.setdefault('KERAS_BACKEND', 'tensorflow')
  import keras

  cnn, sem, label = _data(rows)
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
  epochs = 1 + int(seconds * 4000 / rows) + 1
  model.fit([cnn, sem], label, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=[timer])
  elapsed = time.perf_counter() - timer.start
  return {'examples_per_s': timer.batches * batch_size / elapsed, 'keras': keras.__version__}


def main(argv):
  del argv
  fn = memjax_speed if FLAGS.framework == 'memjax' else keras_speed
  result = fn(FLAGS.batch_size, FLAGS.seconds, FLAGS.rows)
  print(
    json.dumps(
      {
        'framework': FLAGS.framework,
        'batch_size': FLAGS.batch_size,
        'xla_default': FLAGS.xla_default,
        **result,
      }
    )
  )


if __name__ == '__main__':
  app.run(main)
