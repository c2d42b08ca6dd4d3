"""A deterministic synthetic stand-in for LaMem features and scores.

LaMem images and the pretrained VGG16 / captioning weights cannot ship with the code, so the
default dataset is generated. Each row imitates what the paper's extractors give for an image:

* Latent content: three independent Gaussian blocks of `latent_dim` dims each: `z_a` (seen by
  both features), `z_c` (seen only by the CNN feature), `z_s` (seen only by the semantic one).
* `cnn` (4096-d, like VGG16 fc7 after ReLU): relu([z_a, z_c] A_c + feature_noise * e - b),
  with b set so that about `cnn_density` of the entries are non-zero (sparse, non-negative).
* `semantic` (1024-d, like the captioning embedding): [z_a, z_s] A_s + feature_noise * e,
  L2-normalised to unit norm.
* Score: with h_a, h_c, h_s unit-variance projections of z_a, z_c, z_s, the noiseless signal
      f = tanh(1.5 h_a) + 0.5 (h_c^2 - 1) / sqrt(2) + 0.8 sin(1.5 h_s) + 0.4 h_a h_s
  is nonlinear; the semantic feature carries h_a and h_s (most of the signal), the CNN
  feature h_a and h_c, so the two are partly redundant and partly complementary. The observed
  score is a monotone map of f + score_noise * sd(f) * n, n ~ N(0, 1): standardised, pushed
  through the normal CDF and the quantile function of Beta(8.32, 2.68), whose mean 0.756 and SD
  0.124 match LaMem's, then rounded to `score_decimals` (LaMem scores tie a lot, too).
* Ceiling: the Spearman correlation between the noiseless and the observed score, the analogue
  of LaMem's human consistency: no predictor of the observed score should expect to beat it.

Rows are generated in fixed-size chunks, each from its own seeded stream, so row i depends only
on (seed, i) and the knobs, never on `num_examples`.
"""

import dataclasses

import ml_collections
import numpy as np
from scipy import special, stats

from memjax import metrics
from memjax.datasets.base import MemorabilityData

# Beta(a, b) with mean a / (a + b) = 0.756 and SD 0.124, LaMem's score statistics.
_BETA_MEAN, _BETA_SD = 0.756, 0.124
_BETA_SUM = _BETA_MEAN * (1 - _BETA_MEAN) / _BETA_SD**2 - 1
BETA_A, BETA_B = _BETA_MEAN * _BETA_SUM, (1 - _BETA_MEAN) * _BETA_SUM
_CHUNK = 4096  # rows per seeded stream; fixed so that row i never depends on num_examples
_CALIBRATION_SAMPLES = 1_000_000


@dataclasses.dataclass(frozen=True)
class _Params:
  """Projection weights shared by all rows."""

  cnn_proj: np.ndarray  # [2L, cnn_dim]
  cnn_bias: float
  sem_proj: np.ndarray  # [2L, semantic_dim]
  directions: np.ndarray  # [3, L] unit vectors for h_a, h_c, h_s


def _signal(h: np.ndarray) -> np.ndarray:
  h_a, h_c, h_s = h[..., 0], h[..., 1], h[..., 2]
  return (
    np.tanh(1.5 * h_a) + 0.5 * (h_c**2 - 1) / np.sqrt(2) + 0.8 * np.sin(1.5 * h_s) + 0.4 * h_a * h_s
  )


def _params(cfg: ml_collections.ConfigDict, seed: int) -> _Params:
  rng = np.random.default_rng([seed, 0])
  two_l = 2 * cfg.latent_dim
  directions = rng.standard_normal((3, cfg.latent_dim))
  directions /= np.linalg.norm(directions, axis=1, keepdims=True)
  # A pre-activation entry has variance 1 + feature_noise^2; cut at the (1 - density) quantile.
  cnn_bias = stats.norm.ppf(1 - cfg.cnn_density) * np.sqrt(1 + cfg.feature_noise**2)
  return _Params(
    cnn_proj=(rng.standard_normal((two_l, cfg.cnn_dim)) / np.sqrt(two_l)).astype(np.float32),
    cnn_bias=float(cnn_bias),
    sem_proj=(rng.standard_normal((two_l, cfg.semantic_dim)) / np.sqrt(two_l)).astype(np.float32),
    directions=directions,
  )


def _signal_moments(seed: int) -> tuple[float, float]:
  """Mean and SD of the noiseless signal, by a fixed Monte-Carlo draw (h is i.i.d. N(0, 1))."""
  h = np.random.default_rng([seed, 1]).standard_normal((_CALIBRATION_SAMPLES, 3))
  f = _signal(h)
  return float(f.mean()), float(f.std())


def _to_score(standardised: np.ndarray) -> np.ndarray:
  return stats.beta.ppf(special.ndtr(standardised), BETA_A, BETA_B)


def _chunk(cfg, seed: int, params: _Params, index: int, rows: int, moments):
  rng = np.random.default_rng([seed, 2, index])
  latent_dim = cfg.latent_dim
  z = rng.standard_normal((rows, 3, latent_dim)).astype(np.float32)
  z_a, z_c, z_s = z[:, 0], z[:, 1], z[:, 2]
  cnn = np.concatenate([z_a, z_c], 1) @ params.cnn_proj
  cnn += cfg.feature_noise * rng.standard_normal(cnn.shape, np.float32)
  cnn = np.maximum(cnn - params.cnn_bias, 0.0)
  sem = np.concatenate([z_a, z_s], 1) @ params.sem_proj
  sem += cfg.feature_noise * rng.standard_normal(sem.shape, np.float32)
  sem /= np.linalg.norm(sem, axis=1, keepdims=True)
  h = np.einsum('nbl,bl->nb', z.astype(np.float64), params.directions)
  mean, sd = moments
  clean = (_signal(h) - mean) / sd
  noisy = (clean + cfg.score_noise * rng.standard_normal(rows)) / np.sqrt(1 + cfg.score_noise**2)
  return cnn, sem, _to_score(clean), np.round(_to_score(noisy), cfg.score_decimals)


def generate(cfg: ml_collections.ConfigDict, seed: int) -> MemorabilityData:
  """Generates the synthetic dataset described in the module docstring.

  Args:
    cfg: `config.data.synthetic` (num_examples, latent_dim, feature_noise, score_noise,
      cnn_density, cnn_dim, semantic_dim, score_decimals).
    seed: `config.seed`.

  Returns:
    MemorabilityData with features `cnn` and `semantic`, scores, and the ceiling.
  """
  params = _params(cfg, seed)
  moments = _signal_moments(seed)
  n = cfg.num_examples
  cnn = np.empty((n, cfg.cnn_dim), np.float32)
  sem = np.empty((n, cfg.semantic_dim), np.float32)
  clean, scores = np.empty(n), np.empty(n)
  for index, start in enumerate(range(0, n, _CHUNK)):
    stop = min(start + _CHUNK, n)
    full = _chunk(cfg, seed, params, index, _CHUNK, moments)
    cnn[start:stop], sem[start:stop], clean[start:stop], scores[start:stop] = (
      a[: stop - start] for a in full
    )
  ceiling = metrics.spearman(clean, scores)
  description = (
    f'SYNTHETIC stand-in for LaMem ({n} generated rows, seed {seed}; no real images): '
    f'score mean {scores.mean():.3f}, SD {scores.std():.3f}, ceiling {ceiling:.3f}'
  )
  return MemorabilityData(
    name='synthetic',
    ids=np.char.add('synthetic_', np.char.zfill(np.arange(n).astype(str), 8)),
    features={'cnn': cnn, 'semantic': sem},
    scores=scores,
    synthetic=True,
    ceiling=ceiling,
    description=description,
  )
