"""ViT-B/16 extraction images/s: memjax's CLIP encoder vs KerasHub's, same run, same batch size.

  python -m benchmarks.vit_speed --batch_size=8 --seconds=10 --repeats=3

Both compute CLIP ViT-B/16's projected image embedding (224 px, 512-d) with random weights
(speed does not depend on them). memjax's figure is its jitted `forward` from uint8 pixels
(normalisation included), batch sharded over every device, with the XLA options of memjax's
extraction (`memjax`; `memjax_fusions_on`: with XLA's default CPU library fusions, as Keras
gets them); KerasHub's (the reference, Keras 3 on the JAX backend) is `predict_on_batch` of its
CLIP vision encoder, pooler and projection on pixels already normalised. The two are timed in
turns, `--repeats` times each, so that load from other processes hits both alike; the table gives
every turn, the medians and their ratio. KerasHub is a test-only dependency.
"""

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('KERAS_BACKEND', 'jax')

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer('batch_size', 8, 'Images per batch (both frameworks).')
flags.DEFINE_float('seconds', 10.0, 'Measured time per turn (after warm-up).')
flags.DEFINE_integer('repeats', 3, 'Turns per framework, interleaved.')
flags.DEFINE_string('variant', 'b16', 'CLIP variant of memjax.features.vit.')


def _timed(run_batch, batch_size: int, seconds: float) -> float:
  done, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds or done == 0:
    run_batch()
    done += batch_size
  return done / (time.perf_counter() - start)


def memjax_runner(images: np.ndarray, fusions: str = 'auto'):
  """A function running one batch through memjax's jitted CLIP forward.

  Args:
    images: the uint8 batch.
    fusions: `config.cpu_library_fusions` ('auto': as `--mode=extract` compiles; 'on': XLA's
      default CPU library fusions, as Keras compiles).
  """
  import functools

  import jax

  from memjax import parallel
  from memjax.features.vit import model as vit
  from memjax.runtime import xla_options

  cfg = vit.get_config('clip', FLAGS.variant)
  mesh = parallel.make_mesh()
  params = parallel.replicate(vit.init_params(cfg), mesh)
  model = vit.VisionTransformer(cfg, 'embedding')
  forward = jax.jit(
    functools.partial(vit.forward, model=model),
    in_shardings=(parallel.replicated(mesh), parallel.batch_sharding(mesh)),
    compiler_options=xla_options.compiler_options('extract', fusions),
  )
  x = parallel.to_global({'x': images}, mesh, 0)['x']
  run = lambda: forward(params, x).block_until_ready()  # noqa: E731
  run()  # compile
  return run


def keras_hub_runner(images: np.ndarray):
  """A function running one batch through KerasHub's CLIP vision encoder + projection."""
  import keras
  from keras_hub.src.models.clip.clip_layers import CLIPVisionPooler
  from keras_hub.src.models.clip.clip_vision_encoder import CLIPVisionEncoder

  from memjax.features.vit import model as vit

  cfg = vit.get_config('clip', FLAGS.variant)
  s = cfg.image_size
  encoder = CLIPVisionEncoder(cfg.patch, cfg.width, cfg.depth, cfg.heads, cfg.mlp, 'quick_gelu',
                              image_shape=(s, s, 3))  # fmt: skip
  inputs = keras.Input((s, s, 3), name='images')
  pooled = CLIPVisionPooler()(encoder({'images': inputs}))
  model = keras.Model(inputs, keras.layers.Dense(cfg.proj_dim, use_bias=False)(pooled))
  x = (images / 255.0 - np.array(cfg.mean)) / np.array(cfg.std)
  x = x.astype(np.float32)
  run = lambda: np.asarray(model.predict_on_batch(x))  # noqa: E731
  run()  # compile
  return run


def main(argv):
  del argv
  import jax
  import keras

  from memjax.features.vit import model as vit

  cfg = vit.get_config('clip', FLAGS.variant)
  images = np.random.default_rng(0).integers(
    0, 256, (FLAGS.batch_size, cfg.image_size, cfg.image_size, 3), dtype=np.uint8
  )
  runners = {
    'memjax': memjax_runner(images),
    'memjax_fusions_on': memjax_runner(images, 'on'),
    'keras_hub': keras_hub_runner(images),
  }
  rates = {name: [] for name in runners}
  for _ in range(FLAGS.repeats):
    for name, run in runners.items():
      rates[name].append(_timed(run, FLAGS.batch_size, FLAGS.seconds))
  medians = {name: statistics.median(r) for name, r in rates.items()}
  device = jax.devices()[0]
  print(
    f'CLIP ViT-{FLAGS.variant.upper()} image embedding, batch {FLAGS.batch_size}, '
    f'{len(jax.devices())} x {device.platform} ({device.device_kind}); '
    f'keras {keras.__version__} on {keras.backend.backend()}'
  )
  print('| framework | images/s per turn | median |')
  print('| --- | --- | --- |')
  for name, r in rates.items():
    print(f'| {name} | {", ".join(f"{x:.2f}" for x in r)} | {medians[name]:.2f} |')
  for name in ('memjax', 'memjax_fusions_on'):
    ratios = [m / k for m, k in zip(rates[name], rates['keras_hub'], strict=True)]
    print(
      f'{name} / keras_hub: {medians[name] / medians["keras_hub"]:.2f}x (median), per turn '
      + ', '.join(f'{r:.2f}x' for r in ratios)
    )


if __name__ == '__main__':
  app.run(main)
