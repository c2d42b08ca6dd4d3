"""ViT-B/16 extraction images/s: memjax vs transformers + CPU torch vs KerasHub, in one run.

  python -m benchmarks.vit_speed --batch_sizes=8,32 --seconds=10 --repeats=3

Every framework computes CLIP ViT-B/16's projected image embedding (224 px, 512-d) in float32
with random weights (speed does not depend on them). Two paths:

* model only (pixels in memory): memjax's jitted `forward` from uint8 pixels (normalisation
  included), batch sharded over every device, with the XLA options of memjax's extraction
  (`memjax`; `memjax_fusions_on`: with XLA's default CPU library fusions, as Keras gets them);
  transformers' `CLIPVisionModelWithProjection` on CPU torch (`torch`, its default threads,
  `inference_mode`) and KerasHub's CLIP vision encoder, pooler and projection (`keras_hub`,
  Keras 3 on the JAX backend, `predict_on_batch`) on pixels already normalised.
* end to end from JPEGs (files -> embeddings): memjax as `--mode=extract` runs it (the tf.data
  pipeline of `images.image_batches`: decode and the reference CLIP geometry in parallel,
  prefetched, then the jitted forward); torch as a transformers user writes it (PIL open,
  `CLIPImageProcessorPil` -- the `use_fast=False` path, the one without torchvision -- then the
  model, one batch after another in one process).

The runners are timed in turns, `--repeats` times each, so that load from other processes hits
them alike; the table gives every turn, the medians, their ratio to torch's, and the FLOP/s
(the network's matmul FLOPs, 2 per multiply-add, times images/s) against the machine's best
matmul (`benchmarks/matmul_speed.py` in its own process, before and after the turns: the better
of the two, as other processes' load moves it). The JPEGs are
`--jpeg_dir`'s (default: lnsim-dev's photos when `../shared/data/lnsim-dev` exists), else
scikit-image's sample photos cut to mixed aspect ratios. torch, transformers and KerasHub are
test-only dependencies (requirements-reference.txt).
"""

import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault('KERAS_BACKEND', 'jax')

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list('batch_sizes', ['8', '32'], 'Images per batch (every framework).')
flags.DEFINE_float('seconds', 10.0, 'Measured time per turn (after warm-up).')
flags.DEFINE_integer('repeats', 3, 'Turns per runner, interleaved.')
flags.DEFINE_string('variant', 'b16', 'CLIP variant of memjax.features.vit.')
flags.DEFINE_string(
  'jpeg_dir',
  os.path.normpath(os.path.join(ROOT, '..', 'shared', 'data', 'lnsim-dev', 'images')),
  'JPEGs of the end-to-end rows (missing: scikit-image sample photos).',
)
flags.DEFINE_list(
  'runners',
  ['memjax', 'memjax_fusions_on', 'torch', 'keras_hub', 'memjax_jpeg', 'torch_jpeg'],
  'Which runners to time.',
)


def vit_flops(cfg) -> float:
  """Matmul FLOPs of one image through the encoder and projection (2 per multiply-add)."""
  n, d, patches = cfg.positions, cfg.width, cfg.grid**2
  per_block = 2 * n * d * (4 * d + 2 * cfg.mlp) + 4 * n * n * d  # qkv, out, mlp; qk^T and av
  return 2 * patches * d * 3 * cfg.patch**2 + cfg.depth * per_block + 2 * d * cfg.proj_dim


def _timed(run_batch, batch_size: int, seconds: float) -> float:
  done, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds or done == 0:
    run_batch()
    done += batch_size
  return done / (time.perf_counter() - start)


def _normalised(cfg, images: np.ndarray) -> np.ndarray:
  return ((images / 255.0 - np.array(cfg.mean)) / np.array(cfg.std)).astype(np.float32)


def _memjax_forward(cfg, fusions: str):
  """(jitted forward, replicated params, mesh) as memjax's extraction compiles them."""
  import functools

  import jax

  from memjax import parallel
  from memjax.features.vit import model as vit
  from memjax.runtime import xla_options

  mesh = parallel.make_mesh()
  params = parallel.replicate(vit.init_params(cfg), mesh)
  forward = jax.jit(
    functools.partial(vit.forward, model=vit.VisionTransformer(cfg, 'embedding')),
    in_shardings=(parallel.replicated(mesh), parallel.batch_sharding(mesh)),
    compiler_options=xla_options.compiler_options('extract', fusions),
  )
  return forward, params, mesh


def memjax_runner(cfg, images: np.ndarray, fusions: str = 'auto'):
  """One batch of in-memory uint8 pixels through memjax's jitted CLIP forward.

  Args:
    cfg: the ViT config.
    images: the uint8 batch.
    fusions: `config.cpu_library_fusions` ('auto': as `--mode=extract` compiles; 'on': XLA's
      default CPU library fusions, as Keras compiles).
  """
  from memjax import parallel

  forward, params, mesh = _memjax_forward(cfg, fusions)
  x = parallel.to_global({'x': images}, mesh, 0)['x']
  run = lambda: forward(params, x).block_until_ready()  # noqa: E731
  run()  # compile
  return run


def memjax_jpeg_runner(cfg, paths: list[str], batch_size: int):
  """One batch of JPEG files through memjax's extraction pipeline and forward."""
  from memjax import parallel
  from memjax.features import images
  from memjax.features.vit import extractor as vit_extractor

  forward, params, mesh = _memjax_forward(cfg, 'auto')
  geometry = vit_extractor.reference_geometry(cfg, 'hf_clip')
  many = paths * (100_000 // len(paths) + 1)  # more than any turn reads
  batches = images.image_batches(
    many, batch_size=batch_size, resize_to=geometry.resize_to,
    image_size=geometry.image_size, geometry=geometry,
  )  # fmt: skip

  def run():
    x = parallel.to_global({'x': next(batches)['image']}, mesh, 0)['x']
    forward(params, x).block_until_ready()

  run()  # compile
  return run


def _torch_model(cfg):
  import torch
  import transformers

  torch.manual_seed(0)
  config = transformers.CLIPVisionConfig(
    hidden_size=cfg.width, intermediate_size=cfg.mlp, num_hidden_layers=cfg.depth,
    num_attention_heads=cfg.heads, patch_size=cfg.patch, image_size=cfg.image_size,
    projection_dim=cfg.proj_dim, hidden_act='quick_gelu',
  )  # fmt: skip
  return transformers.CLIPVisionModelWithProjection(config).eval()


def torch_runner(cfg, images: np.ndarray):
  """One batch of normalised pixels through transformers' CLIP vision model on CPU torch."""
  import torch

  model = _torch_model(cfg)
  x = torch.from_numpy(_normalised(cfg, images).transpose(0, 3, 1, 2).copy())

  def run():
    with torch.inference_mode():
      return model(pixel_values=x).image_embeds

  run()
  return run


def torch_jpeg_runner(cfg, paths: list[str], batch_size: int):
  """One batch of JPEG files through PIL, transformers' PIL CLIP processor and the model."""
  import torch
  import transformers
  from PIL import Image

  model = _torch_model(cfg)
  processor = transformers.CLIPImageProcessorPil()
  files = itertools.cycle(paths)

  def run():
    pil = []
    for path in itertools.islice(files, batch_size):
      with Image.open(path) as image:
        pil.append(image.convert('RGB'))
    with torch.inference_mode():
      pixels = processor(images=pil, return_tensors='pt')['pixel_values']
      return model(pixel_values=pixels).image_embeds

  run()
  return run


def keras_hub_runner(cfg, images: np.ndarray):
  """One batch of normalised pixels through KerasHub's CLIP vision encoder + projection."""
  import keras
  from keras_hub.src.models.clip.clip_layers import CLIPVisionPooler
  from keras_hub.src.models.clip.clip_vision_encoder import CLIPVisionEncoder

  s = cfg.image_size
  encoder = CLIPVisionEncoder(cfg.patch, cfg.width, cfg.depth, cfg.heads, cfg.mlp, 'quick_gelu',
                              image_shape=(s, s, 3))  # fmt: skip
  inputs = keras.Input((s, s, 3), name='images')
  pooled = CLIPVisionPooler()(encoder({'images': inputs}))
  model = keras.Model(inputs, keras.layers.Dense(cfg.proj_dim, use_bias=False)(pooled))
  x = _normalised(cfg, images)
  run = lambda: np.asarray(model.predict_on_batch(x))  # noqa: E731
  run()  # compile
  return run


def jpeg_paths(folder: str) -> list[str]:
  """Up to 256 JPEGs of `folder`, or scikit-image's sample photos in mixed aspect ratios."""
  if os.path.isdir(folder):
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(('.jpg', '.jpeg')))
    if names:
      return [os.path.join(folder, n) for n in names[:256]]
  import skimage.data
  from PIL import Image

  out = tempfile.mkdtemp(prefix='vit_speed_jpegs_')
  photos = [
    skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(),
    skimage.data.rocket(), skimage.data.astronaut()[100:400], skimage.data.coffee()[:, 150:450],
  ]  # fmt: skip
  paths = []
  for i, pixels in enumerate(photos):
    paths.append(os.path.join(out, f'{i}.jpg'))
    Image.fromarray(pixels).save(paths[-1], quality=90)
  return paths


def best_matmul() -> float:
  """The machine's best f32 matmul FLOP/s (benchmarks/matmul_speed.py, its own process)."""
  done = subprocess.run(
    [sys.executable, '-m', 'benchmarks.matmul_speed'], cwd=ROOT, capture_output=True, text=True,
    check=True,
  )  # fmt: skip
  return json.loads(done.stdout.strip().splitlines()[-1])['matmul_flops_per_s']


def _runners(cfg, batch_size: int, paths: list[str]) -> dict:
  images = np.random.default_rng(0).integers(
    0, 256, (batch_size, cfg.image_size, cfg.image_size, 3), dtype=np.uint8
  )
  make = {
    'memjax': lambda: memjax_runner(cfg, images),
    'memjax_fusions_on': lambda: memjax_runner(cfg, images, 'on'),
    'torch': lambda: torch_runner(cfg, images),
    'keras_hub': lambda: keras_hub_runner(cfg, images),
    'memjax_jpeg': lambda: memjax_jpeg_runner(cfg, paths, batch_size),
    'torch_jpeg': lambda: torch_jpeg_runner(cfg, paths, batch_size),
  }
  return {name: make[name]() for name in FLAGS.runners}


def _measure(cfg, batch_size: int, paths: list[str]) -> list[tuple[str, float]]:
  """Turns of every runner at `batch_size`: (table row with {gflops} and {share} left to fill,
  median images/s) per runner."""
  runners = _runners(cfg, batch_size, paths)
  rates = {name: [] for name in runners}
  for _ in range(FLAGS.repeats):
    for name, run in runners.items():
      rates[name].append(_timed(run, batch_size, FLAGS.seconds))
  lines = []
  for name, r in rates.items():
    median = statistics.median(r)
    path = 'JPEG files' if name.endswith('_jpeg') else 'model only'
    torch_name = 'torch_jpeg' if name.endswith('_jpeg') else 'torch'
    versus = ''
    if torch_name in rates and name != torch_name:
      turns = [a / b for a, b in zip(r, rates[torch_name], strict=True)]
      versus = f'{statistics.median(turns):.2f}x ({", ".join(f"{t:.2f}" for t in turns)})'
    row = (
      f'| {batch_size} | {path} | {name.removesuffix("_jpeg")} | '
      f'{", ".join(f"{x:.2f}" for x in r)} | {median:.2f} | {{gflops}} | {{share}} | {versus} |'
    )
    lines.append((row, median))
  return lines


def main(argv):
  del argv
  import jax
  import keras
  import torch
  import transformers

  from memjax.features.vit import variants

  cfg = variants.get_config('clip', FLAGS.variant)
  flops, matmul = vit_flops(cfg), best_matmul()
  paths = jpeg_paths(FLAGS.jpeg_dir)
  device = jax.devices()[0]
  lines = []
  for batch_size in map(int, FLAGS.batch_sizes):
    lines += _measure(cfg, batch_size, paths)
  matmul_after = best_matmul()
  print(
    f'CLIP ViT-{FLAGS.variant.upper()} image embedding ({flops / 1e9:.1f} GFLOP per image), '
    f'{len(jax.devices())} x {device.platform} ({device.device_kind}), {os.cpu_count()} CPUs; '
    f'torch {torch.__version__} ({torch.get_num_threads()} threads), transformers '
    f'{transformers.__version__}; keras {keras.__version__} on {keras.backend.backend()}; '
    f'best matmul {matmul / 1e9:.0f} GFLOP/s before the turns, {matmul_after / 1e9:.0f} after '
    f'(the better one below); {len(paths)} JPEGs from {os.path.dirname(paths[0])}'
  )
  matmul = max(matmul, matmul_after)
  print('| batch | path | framework | images/s per turn | median | GFLOP/s | of best matmul '
        '| / torch (median of turns) |')  # fmt: skip
  print('| --- | --- | --- | --- | --- | --- | --- | --- |')
  for row, rate in lines:
    print(row.format(gflops=f'{rate * flops / 1e9:.0f}', share=f'{rate * flops / matmul:.2f}'))


if __name__ == '__main__':
  app.run(main)
