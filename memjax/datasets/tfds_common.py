"""What the TFDS builders (`tfds_lamem`, `tfds_image_folder`) share beyond `score_files`: the
image values handed to TFDS and the build command.
"""

import sys

import numpy as np
from PIL import Image

from memjax.errors import InputError

# Formats whose bytes TFDS stores as they are (tf.image.decode_image reads them as one frame);
# other formats are decoded with PIL and stored as PNG.
PASSTHROUGH_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')


def image_value(path: str) -> str | np.ndarray:
  """What to hand `tfds.features.Image`: the path itself, or an RGB array for other formats."""
  if path.lower().endswith(PASSTHROUGH_SUFFIXES):
    return path
  try:
    with Image.open(path) as image:
      return np.asarray(image.convert('RGB'))
  except OSError as e:
    raise InputError(f'cannot decode image {path}: {e}') from e


def build_main(module_file: str) -> None:
  """Runs `tfds build <module_file> <command-line flags>` without the `tfds` script.

  TFDS 4.9.10's `tfds` script imports apache_beam at start-up; its `build` command does not.

  Args:
    module_file: the builder module to build (its `__file__`).
  """
  # Imported here: only this command-line entry point needs TFDS's CLI modules.
  import simple_parsing
  from tensorflow_datasets.scripts.cli import build

  simple_parsing.parse(build.Args, args=[module_file, *sys.argv[1:]]).execute()
