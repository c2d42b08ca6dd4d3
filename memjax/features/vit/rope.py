"""DINOv3's 2-D rotary position embedding (RoPE) of the patch tokens' queries and keys.

As transformers' `DINOv3ViTRopePositionEmbedding` and `apply_rotary_pos_emb` compute it (eval
mode: no coordinate shift, jitter or rescale): patch centres on the `grid` x `grid` patch grid
at ((i + 0.5) / grid) * 2 - 1 in [-1, 1], row (y) then column (x); per head of width `hd`, the
frequencies theta ** -(4k / hd) for k < hd / 4; the angles 2 pi * coordinate * frequency laid
out [y freqs, x freqs, y freqs, x freqs] (hd values); then x * cos + rotate_half(x) * sin, with
rotate_half([a, b]) = [-b, a]. The class and register tokens in front are not rotated.
"""

import jax
import jax.numpy as jnp
import numpy as np


def tables(grid: int, head_dim: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
  """(cos, sin), each float32 [grid * grid, head_dim], computed in float32 as the reference."""
  inv_freq = (1 / np.float32(theta) ** np.arange(0, 1, 4 / head_dim, dtype=np.float32)).astype(
    np.float32
  )
  centres = (np.arange(0.5, grid, dtype=np.float32) / np.float32(grid)).astype(np.float32)
  ys, xs = np.meshgrid(centres, centres, indexing='ij')
  coords = 2 * np.stack([ys.reshape(-1), xs.reshape(-1)], axis=-1) - 1  # [N, 2]
  angles = np.float32(2 * np.pi) * coords[:, :, None] * inv_freq[None, None, :]
  angles = np.tile(angles.reshape(grid * grid, -1), 2).astype(np.float32)
  return np.cos(angles), np.sin(angles)


def rotate(x: jax.Array, heads: int, grid: int, theta: float) -> jax.Array:
  """`x` [B, T, D] (queries or keys, D = heads * hd) with its last grid * grid tokens rotated."""
  b, t, d = x.shape
  hd, n = d // heads, grid * grid
  cos, sin = (jnp.asarray(a, x.dtype)[:, None, :] for a in tables(grid, hd, theta))
  patches = x[:, t - n :].reshape(b, n, heads, hd)
  half = jnp.concatenate([-patches[..., hd // 2 :], patches[..., : hd // 2]], axis=-1)
  patches = (patches * cos + half * sin).reshape(b, n, d)
  return jnp.concatenate([x[:, : t - n], patches], axis=1)
