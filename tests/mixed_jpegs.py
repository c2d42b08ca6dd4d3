"""JPEG files of mixed aspect ratios from scikit-image's sample photos, for the end-to-end
comparisons of memjax's image pipeline + ViT with transformers' processors + torch models."""

import os

import skimage.data
from PIL import Image


def write(folder: str, square_only: bool = False) -> list[str]:
  """Paths of the photos saved as JPEG (quality 90) in `folder`: square 512 x 512, 600 x 400,
  221 x 300, 177 x 424 and 512 x 301; `square_only`: the square ones (512 and a 300 x 300 cut)."""
  photos = {
    'astronaut': skimage.data.astronaut(),  # 512 x 512
    'coffee': skimage.data.coffee(),  # 600 x 400
    'chelsea': skimage.data.chelsea()[:, 40:261],  # 221 x 300
    'rocket': skimage.data.rocket()[3:, 100:277],  # 177 x 424
    'astronaut_wide': skimage.data.astronaut()[101:402, :],  # 512 x 301
  }
  if square_only:
    photos = {'astronaut': photos['astronaut'], 'coffee_square': photos['coffee'][:300, 150:450]}
  paths = []
  for name, pixels in photos.items():
    paths.append(os.path.join(folder, f'{name}.jpg'))
    Image.fromarray(pixels).save(paths[-1], quality=90)
  return paths
