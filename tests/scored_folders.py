"""Folders of small generated PNGs with a `scores.csv` whose scores follow the images' brightness
(learnable from colour features), for the tests that train on images."""

import csv
import os

import numpy as np
from PIL import Image


def write_brightness_folder(
  root, n: int, *, seed: int, noise: float = 40.0, size=(20, 24), score_noise: float | None = 0.05
) -> None:
  """`n` PNGs of Gaussian noise around a random brightness level, and their scores.

  Args:
    root: a pathlib folder to create.
    n: images.
    seed: NumPy seed.
    noise: SD of the pixel noise around the level (0..255).
    size: (height, width) of every image.
    score_noise: the score is the level plus this much Gaussian noise, clipped to [0, 1]; None:
      the image's mean brightness.
  """
  rng = np.random.default_rng(seed)
  os.makedirs(root)
  with open(root / 'scores.csv', 'w', newline='') as f:
    out = csv.writer(f)
    out.writerow(['image', 'score'])
    for i in range(n):
      level = rng.uniform(0.1, 0.9)
      pixels = np.clip(rng.normal(level * 255, noise, size=(*size, 3)), 0, 255).astype(np.uint8)
      Image.fromarray(pixels).save(root / f'{i:03d}.png')
      if score_noise is None:
        score = pixels.mean() / 255
      else:
        score = np.clip(level + rng.normal(0, score_noise), 0, 1)
      out.writerow([f'{i:03d}.png', f'{score:.4f}'])
