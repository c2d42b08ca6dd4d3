"""Extraction images/s: memjax VGG16 fc7, keras.applications.VGG16, or memjax EfficientNet-Lite0.

Prints one JSON line.

  python -m benchmarks.extract_speed --framework=memjax --batch_size=16 --seconds=20

Both take 224x224 RGB images and produce fc7 (4096-d after ReLU) with random weights (speed does
not depend on them); memjax's figure is its jitted forward including preprocessing, batch sharded
over every device; Keras' is `model.predict` of the model cut at `fc2`.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_enum(
  'framework', 'memjax', ['memjax', 'keras', 'memjax_efficientnet'], 'What to measure.'
)
flags.DEFINE_integer('batch_size', 16, 'Images per batch.')
flags.DEFINE_float('seconds', 20.0, 'Measured time (after warm-up).')
flags.DEFINE_enum('fusions', 'off', ['on', 'off'], "memjax: XLA's CPU library fusions.")


def _options() -> dict:
  """Explicit XLA options: {} is XLA's default (library fusions on)."""
  import jax

  if FLAGS.fusions == 'on' or jax.default_backend() != 'cpu':
    return {}
  return {'xla_cpu_experimental_ynn_fusion_type': ''}


def _images(n: int) -> np.ndarray:
  return np.random.default_rng(0).integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)


def _timed(run_batch, batch_size: int, seconds: float) -> float:
  run_batch()  # compile / warm up
  done, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    run_batch()
    done += batch_size
  return done / (time.perf_counter() - start)


def memjax_speed(batch_size: int, seconds: float) -> float:
  import functools

  import jax

  from memjax import parallel
  from memjax.features.vgg import model as vgg_model

  arch = vgg_model.VGGArch()
  mesh = parallel.make_mesh()
  x = np.zeros((1, 224, 224, 3), np.float32)
  params = jax.jit(vgg_model.VGG(arch).init)(jax.random.PRNGKey(0), x)['params']
  params = parallel.replicate(jax.device_get(params), mesh)
  forward = jax.jit(
    functools.partial(vgg_model.fc7, arch=arch, origin=vgg_model.KERAS),
    in_shardings=(parallel.replicated(mesh), parallel.batch_sharding(mesh)),
    compiler_options=_options(),
  )
  images = parallel.to_global({'x': _images(batch_size)}, mesh, 0)['x']
  return _timed(lambda: forward(params, images).block_until_ready(), batch_size, seconds)


def efficientnet_speed(batch_size: int, seconds: float) -> float:
  import jax

  from memjax import parallel
  from memjax.features.efficientnet_lite import model as el_model

  mesh = parallel.make_mesh()
  params = parallel.replicate(el_model.init_params(), mesh)
  forward = jax.jit(
    el_model.forward,
    in_shardings=(parallel.replicated(mesh), parallel.batch_sharding(mesh)),
    compiler_options=_options(),
  )
  images = parallel.to_global({'x': _images(batch_size)}, mesh, 0)['x']
  return _timed(lambda: forward(params, images).block_until_ready(), batch_size, seconds)


def keras_speed(batch_size: int, seconds: float) -> float:
  os.environ.setdefault('KERAS_BACKEND', 'tensorflow')
  import keras

  full = keras.applications.VGG16(weights=None)
  model = keras.Model(full.input, full.get_layer('fc2').output)
  images = keras.applications.vgg16.preprocess_input(_images(batch_size).astype('float32'))
  return _timed(
    lambda: model.predict(images, batch_size=batch_size, verbose=0), batch_size, seconds
  )


def main(argv):
  del argv
  fn = {'memjax': memjax_speed, 'keras': keras_speed, 'memjax_efficientnet': efficientnet_speed}[
    FLAGS.framework
  ]
  rate = fn(FLAGS.batch_size, FLAGS.seconds)
  print(
    json.dumps(
      {
        'framework': FLAGS.framework,
        'batch_size': FLAGS.batch_size,
        'fusions': FLAGS.fusions,
        'images_per_s': rate,
      }
    )
  )


if __name__ == '__main__':
  app.run(main)
