"""XLA's CPU library (YNNPACK) fusions on against off, per jitted function; prints one JSON line.

  python -m benchmarks.fusion_speed [--functions=train16,train256,eval1024,vgg16,effnet,matmul]

Each function is compiled twice in this process, with XLA's default options ({}: library fusions
on) and with `{'xla_cpu_experimental_ynn_fusion_type': ''}` (off), and the two take turns,
`--seconds` each, for `--rounds` rounds; the figure is the ratio on/off of their calls per
second in the same round (above 1: the fusions win). Inputs are already on the device, so the
compiled function alone is timed:
* `train16`, `train256`: memjax's scanned train step (configs/k4.py's MLP on 4096 + 1024
  features; 100 steps per call at batch 16, 10 at 256);
* `eval1024`: memjax's eval step on a batch of 1024 (config.eval_batch_size);
* `vgg16`: VGG16 fc7 of 224x224 images (memjax/features/vgg/model.py), batch `--image_batch`;
* `effnet`: EfficientNet-Lite0 features, batch `--image_batch`;
* `matmul`: a 4096^3 float32 matmul.
"""

import functools
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from benchmarks import memjax_api  # noqa: E402

FLAGS = flags.FLAGS
ALL = ['train16', 'train256', 'eval1024', 'vgg16', 'effnet', 'matmul']
flags.DEFINE_list('functions', ALL, f'Which of {ALL}.')
flags.DEFINE_float('seconds', 4.0, 'Measured seconds per setting per round (at least 2 calls).')
flags.DEFINE_integer('rounds', 3, 'Rounds of taking turns.')
flags.DEFINE_integer('image_batch', 16, 'Images per call of the extractors.')

SETTINGS = {'on': {}, 'off': {'xla_cpu_experimental_ynn_fusion_type': ''}}


def _mlp():
  from configs import k4
  from memjax import models, optimizers, parallel

  config = k4.get_config()
  model = models.create_model(config)
  tx = optimizers.create_optimizer(config.optimizer, 10**6, 10**3)
  return model, tx, parallel.make_mesh()


def _features(rng, shape):
  return {
    'cnn': np.maximum(rng.standard_normal((*shape, 4096), np.float32) - 0.7, 0),
    'semantic': rng.standard_normal((*shape, 1024), np.float32) / 32,
    'label': rng.integers(0, 4, shape).astype(np.int32),
    'score': rng.uniform(0.4, 1.0, shape).astype(np.float32),
  }


def train_calls(batch_size: int) -> dict:
  """setting -> call(): one scanned call of memjax's train step on a device-resident chunk."""
  from memjax import parallel

  model, tx, mesh = _mlp()
  t = 100 if batch_size <= 16 else 10
  chunk = parallel.to_global(_features(np.random.default_rng(0), (t, batch_size)), mesh, 1)
  calls = {}
  for name, options in SETTINGS.items():
    state, fn, args = memjax_api.train_setup(model, tx, mesh, options)
    box = [state]

    def call(fn=fn, box=box, args=args):
      box[0], sums = fn(box[0], chunk, *args)
      return sums

    calls[name] = call
  return calls


def eval_calls(batch_size: int) -> dict:
  from memjax import parallel

  model, tx, mesh = _mlp()
  batch = _features(np.random.default_rng(1), (batch_size,))
  batch['mask'] = np.ones(batch_size, np.float32)
  batch = parallel.to_global(batch, mesh, 0)
  state, _, _ = memjax_api.train_setup(model, tx, mesh, {})
  params = state.params
  calls = {}
  for name, options in SETTINGS.items():
    fn, args = memjax_api.eval_setup(model, mesh, options)
    calls[name] = functools.partial(fn, params, batch, *args)
  return calls


def _images(n: int) -> jax.Array:
  return jax.device_put(np.random.default_rng(0).integers(0, 256, (n, 224, 224, 3), np.uint8))


def vgg16_calls(batch_size: int) -> dict:
  from memjax.features.vgg import model as vgg_model

  arch = vgg_model.VGGArch()
  x = jnp.zeros((1, 224, 224, 3), jnp.float32)
  params = jax.jit(vgg_model.VGG(arch).init)(jax.random.PRNGKey(0), x)['params']
  images = _images(batch_size)
  forward = functools.partial(vgg_model.fc7, arch=arch, origin=vgg_model.KERAS)
  return {
    name: functools.partial(jax.jit(forward, compiler_options=options), params, images)
    for name, options in SETTINGS.items()
  }


def effnet_calls(batch_size: int) -> dict:
  from memjax.features.efficientnet_lite import model as el_model

  params = jax.device_put(el_model.init_params())
  images = _images(batch_size)
  return {
    name: functools.partial(jax.jit(el_model.forward, compiler_options=options), params, images)
    for name, options in SETTINGS.items()
  }


def matmul_calls() -> dict:
  x = jnp.ones((4096, 4096), jnp.float32)
  return {
    name: functools.partial(jax.jit(lambda a: a @ a, compiler_options=options), x)
    for name, options in SETTINGS.items()
  }


def measure(calls: dict, seconds: float, rounds: int) -> dict[str, list[float]]:
  """Calls per second of each setting, taking turns; at least 2 calls per turn."""
  for call in calls.values():
    jax.block_until_ready(call())  # compile
  rates = {name: [] for name in calls}
  for _ in range(rounds):
    for name, call in calls.items():
      done, start = 0, time.perf_counter()
      while done < 2 or time.perf_counter() - start < seconds:
        jax.block_until_ready(call())
        done += 1
      rates[name].append(done / (time.perf_counter() - start))
  return rates


def main(argv):
  del argv
  builders = {
    'train16': lambda: train_calls(16),
    'train256': lambda: train_calls(256),
    'eval1024': lambda: eval_calls(1024),
    'vgg16': lambda: vgg16_calls(FLAGS.image_batch),
    'effnet': lambda: effnet_calls(FLAGS.image_batch),
    'matmul': matmul_calls,
  }
  out = {'backend': jax.default_backend(), 'image_batch': FLAGS.image_batch, 'functions': {}}
  for name in FLAGS.functions:
    rates = measure(builders[name](), FLAGS.seconds, FLAGS.rounds)
    ratios = [a / b for a, b in zip(rates['on'], rates['off'], strict=True)]
    out['functions'][name] = {
      'calls_per_s': rates,
      'on_over_off': ratios,
      'median_on_over_off': statistics.median(ratios),
    }
    sys.stderr.write(f'{name}: on/off {" ".join(f"{r:.3f}" for r in ratios)}\n')
  print(json.dumps(out))


if __name__ == '__main__':
  app.run(main)
