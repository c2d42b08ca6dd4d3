"""Test helper: a written figure is a real PNG with a drawing on it, not just a non-empty file."""

import numpy as np
from PIL import Image


def assert_figure(path: str, min_size: tuple[int, int] = (300, 200), min_colours: int = 8) -> None:
  """`path` decodes as a PNG of at least `min_size` (width, height) pixels whose pixels take at
  least `min_colours` values (a blank or one-colour canvas fails) and are not all white."""
  with Image.open(path) as image:
    assert image.format == 'PNG', (path, image.format)
    assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1], (path, image.size)
    pixels = np.asarray(image.convert('RGB')).reshape(-1, 3)
  colours = np.unique(pixels, axis=0)
  assert len(colours) >= min_colours, (path, len(colours))
  assert (pixels < 200).any(axis=1).mean() > 0.001, path  # something dark is drawn
