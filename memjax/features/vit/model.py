"""CLIP, SigLIP, DINOv2 and DINOv3 image encoders: one Flax Linen vision transformer, configured
by a `variants.ViTConfig` (the families and their outputs: `variants.py`).

Each block is x + ls1 * attn(LN(x)), then x + ls2 * mlp(LN(x)) (ls = 1 without layer scale).
Preprocessing per family: `normalize` applies the pixel part (RGB / 255, then CLIP's mean/std,
SigLIP's (x - 0.5) / 0.5, or DINOv2's and DINOv3's ImageNet mean/std); the image pipeline cuts
the image as the family's reference processor does (`extractor.reference_geometry`,
`geometry.py`): CLIP and DINOv2 resize the shorter side (224 and 256) with PIL bicubic, the
longer side truncated, and crop the centre 224; SigLIP resizes the whole image to the model's
square (stretched, bicubic; SigLIP 2: bilinear); DINOv3 stretches it bilinearly in float32.
`fit='crop'` / `'stretch'` overrides the crop. When fused with a feature of another geometry
(`extractor.share_geometry`), the image arrives at that geometry and is resized to the model size
inside the jit (bicubic, antialiased).

`dtype='bfloat16'` computes in bfloat16 (weights stay float32; LayerNorm statistics and the
softmax in float32), for GPU/TPU. `remat=True` (a `VisionTransformer` field) wraps each block in
`jax.checkpoint` (`nn.remat`) for fine-tuning: same outputs and parameters, and the backward
pass recomputes each block's activations instead of storing them. `pool_depths` appends the
token mean of those blocks' outputs (1-based) to the feature. Weights: `weights.py`; the
architecture of a file: `architecture.py`; extractors: `extractor.py`.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from memjax.features.vit import rope
from memjax.features.vit.variants import OUTPUTS, ViTConfig


def _activation(name: str):
  if name == 'quick_gelu':
    return lambda x: x * jax.nn.sigmoid(1.702 * x)
  return functools.partial(jax.nn.gelu, approximate=name == 'gelu_tanh')


def _attention(q: jax.Array, k: jax.Array, v: jax.Array, heads: int) -> jax.Array:
  """Softmax attention (float32 softmax) of [B, Tq, D] queries over [B, T, D] keys/values."""
  b, tq, d = q.shape
  hd = d // heads
  q = q.reshape(b, tq, heads, hd) * jnp.asarray(hd**-0.5, q.dtype)
  k = k.reshape(b, -1, heads, hd)
  v = v.reshape(b, -1, heads, hd)
  logits = jnp.einsum('bqhd,bkhd->bhqk', q, k, preferred_element_type=jnp.float32)
  weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
  return jnp.einsum('bhqk,bkhd->bqhd', weights, v).reshape(b, tq, d)


class Block(nn.Module):
  """Pre-LN transformer block: self-attention and MLP residual branches (optional layer scale)."""

  cfg: ViTConfig

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c, dt = self.cfg, jnp.dtype(self.cfg.dtype)
    d = c.width
    h = nn.LayerNorm(c.eps, dtype=dt, name='ln1')(x)
    q, k, v = jnp.split(nn.Dense(3 * d, dtype=dt, name='qkv')(h), 3, axis=-1)
    if c.rope_theta:
      q, k = (rope.rotate(a, c.heads, c.grid, c.rope_theta) for a in (q, k))
    h = nn.Dense(d, dtype=dt, name='out')(_attention(q, k, v, c.heads))
    if c.layer_scale:
      h = h * self.param('ls1', nn.initializers.ones, (d,)).astype(dt)
    x = x + h
    h = nn.LayerNorm(c.eps, dtype=dt, name='ln2')(x)
    if c.act == 'swiglu':  # DINOv2-giant's, DINOv3's SwiGLU MLP: silu(x W1) * (x W2), then W3
      a, g = jnp.split(nn.Dense(2 * c.mlp, dtype=dt, name='fc1')(h), 2, axis=-1)
      h = jax.nn.silu(a) * g
    else:
      h = _activation(c.act)(nn.Dense(c.mlp, dtype=dt, name='fc1')(h))
    h = nn.Dense(d, dtype=dt, name='fc2')(h)
    if c.layer_scale:
      h = h * self.param('ls2', nn.initializers.ones, (d,)).astype(dt)
    return x + h


class MAPHead(nn.Module):
  """SigLIP's multi-head attention pooling: a learned probe attends to the tokens, + LN/MLP."""

  cfg: ViTConfig

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c, dt = self.cfg, jnp.dtype(self.cfg.dtype)
    probe = self.param('probe', nn.initializers.normal(0.02), (c.width,)).astype(dt)
    q = nn.Dense(c.width, dtype=dt, name='q')(jnp.broadcast_to(probe, (x.shape[0], 1, c.width)))
    k, v = jnp.split(nn.Dense(2 * c.width, dtype=dt, name='kv')(x), 2, axis=-1)
    h = nn.Dense(c.width, dtype=dt, name='out')(_attention(q, k, v, c.heads))
    y = nn.LayerNorm(c.eps, dtype=dt, name='ln')(h)
    y = _activation(c.act)(nn.Dense(c.mlp, dtype=dt, name='fc1')(y))
    return (h + nn.Dense(c.width, dtype=dt, name='fc2')(y))[:, 0]


class VisionTransformer(nn.Module):
  """The encoder on normalised images [B, S, S, 3] -> the `output` feature [B, D] (+ pools).

  Attributes:
    cfg: the architecture and compute dtype.
    output: one of `OUTPUTS[cfg.family]`.
    pool_depths: blocks (1-based) whose token means follow the feature.
    remat: wrap each `Block` in `nn.remat` (gradient checkpointing; same outputs and params).
  """

  cfg: ViTConfig
  output: str
  pool_depths: tuple[int, ...] = ()
  remat: bool = False

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    c, dt = self.cfg, jnp.dtype(self.cfg.dtype)
    b, g, p = images.shape[0], c.grid, c.patch
    x = images[:, : g * p, : g * p].astype(dt)
    x = x.reshape(b, g, p, g, p, 3).transpose(0, 1, 3, 2, 4, 5).reshape(b, g * g, p * p * 3)
    x = nn.Dense(c.width, use_bias=c.patch_bias, dtype=dt, name='patch_embed')(x)
    init = nn.initializers.normal(0.02)
    if c.class_token:
      cls = self.param('cls', init, (c.width,)).astype(dt)
      x = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, c.width)), x], axis=1)
    if not c.rope_theta:
      x = x + self.param('pos', init, (c.positions, c.width)).astype(dt)
    if c.registers:
      reg = self.param('registers', init, (c.registers, c.width)).astype(dt)
      x = jnp.concatenate([x[:, :1], jnp.broadcast_to(reg, (b,) + reg.shape), x[:, 1:]], axis=1)
    if c.pre_norm:
      x = nn.LayerNorm(c.eps, dtype=dt, name='pre_norm')(x)
    pools, block = [], nn.remat(Block) if self.remat else Block  # same name, same parameters
    for i in range(c.depth):
      x = block(c, name=f'block_{i}')(x)
      if i + 1 in self.pool_depths:
        pools.append(jnp.mean(x.astype(jnp.float32), axis=1))
    x = nn.LayerNorm(c.eps, dtype=dt, name='norm')(x)
    patches = x[:, int(c.class_token) + c.registers :].astype(jnp.float32)
    if self.output == 'embedding':
      feature = nn.Dense(c.proj_dim, use_bias=False, dtype=dt, name='proj')(x[:, 0])
    elif self.output in ('pooled', 'cls') and not c.map_head:
      feature = x[:, 0]
    elif self.output == 'pooled':
      feature = MAPHead(c, name='head')(x)
    elif self.output == 'cls_patch_mean':
      feature = jnp.concatenate([x[:, 0].astype(jnp.float32), patches.mean(axis=1)], axis=-1)
    else:
      feature = patches.mean(axis=1)
    return jnp.concatenate([feature.astype(jnp.float32)] + pools, axis=-1)


def normalize(cfg: ViTConfig, images: jax.Array) -> jax.Array:
  """uint8 RGB [B, s, s, 3] -> float32 [B, S, S, 3]: resized to S if needed, mean/std applied."""
  x = images.astype(jnp.float32) / 255.0
  b, s = x.shape[0], cfg.image_size
  if x.shape[1:3] != (s, s):
    x = jax.image.resize(x, (b, s, s, 3), 'cubic', antialias=True)
  return (x - jnp.asarray(cfg.mean)) / jnp.asarray(cfg.std)


def forward(params: Any, images: jax.Array, *, model: VisionTransformer) -> jax.Array:
  """Features [B, D] float32 of uint8 RGB `images` [B, s, s, 3] (jittable)."""
  return model.apply({'params': params}, normalize(model.cfg, images))


def param_shapes(cfg: ViTConfig) -> Any:
  """The parameter tree's `ShapeDtypeStruct`s, with every output's weights (no compute)."""
  images = jax.ShapeDtypeStruct((1, cfg.image_size, cfg.image_size, 3), jnp.float32)
  trees = [
    jax.eval_shape(VisionTransformer(cfg, o).init, jax.random.key(0), images)['params']
    for o in OUTPUTS[cfg.family]
  ]
  merged = {}
  for tree in trees:
    merged.update(tree)
  return merged


def init_params(cfg: ViTConfig, seed: int = 0) -> dict:
  """Random float32 numpy parameters of every output (tests and benchmarks; drawn with NumPy)."""
  rng = np.random.default_rng(seed)

  def draw(path, leaf) -> np.ndarray:
    name = path[-1].key
    if name == 'scale':
      return (1.0 + 0.1 * rng.standard_normal(leaf.shape)).astype(np.float32)
    if name in ('ls1', 'ls2'):
      return (0.5 + 0.1 * rng.standard_normal(leaf.shape)).astype(np.float32)
    fan_in = leaf.shape[0] if name == 'kernel' else 1
    std = fan_in**-0.5 if name == 'kernel' else 0.1
    return (rng.standard_normal(leaf.shape) * std).astype(np.float32)

  return jax.tree_util.tree_map_with_path(draw, param_shapes(cfg))
