"""What the TFDS builders (`tfds_lamem`, `tfds_image_folder`) share beyond `score_files`: the
image values handed to TFDS and the build command.
"""

import sys

import numpy as np
from PIL import Image

from memjax.errors import InputError
from memjax.features import image_decode

_ORIENTATION = 0x0112  # the EXIF tag

# Formats whose bytes TFDS stores as they are (tf.image.decode_image reads them as one frame);
# other formats, and files TensorFlow would decode otherwise than `image_decode` (EXIF
# orientation, more than 8 bits, alpha, palette, CMYK, animation), are decoded by `image_decode`
# and stored as PNG.
PASSTHROUGH_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')


def image_value(path: str) -> str | np.ndarray:
  """What to hand `tfds.features.Image`: the path itself, or an upright 8-bit RGB array."""
  try:
    if path.lower().endswith(PASSTHROUGH_SUFFIXES) and _stored_as_is(path):
      return path
    return np.asarray(image_decode.decode_image(path))
  except OSError as e:
    raise InputError(f'cannot decode image {path}: {image_decode.describe_error(e)}') from e


def _stored_as_is(path: str) -> bool:
  """Whether TensorFlow decodes the file's bytes to the same pixels as `image_decode`."""
  with Image.open(path) as image:
    plain = image.mode in ('RGB', 'L') and not getattr(image, 'is_animated', False)
    return plain and image.getexif().get(_ORIENTATION, 1) == 1


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
