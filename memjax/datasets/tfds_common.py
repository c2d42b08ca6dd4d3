"""Checks shared by the TFDS builders (`tfds_lamem`, `tfds_image_folder`): scores, paths, images.

Every check raises `InputError` naming the file, the line and what was expected.
"""

import math
import os
import posixpath
import sys

import numpy as np
from PIL import Image

from memjax.errors import InputError

# Formats whose bytes TFDS stores as they are (tf.image.decode_image reads them as one frame);
# other formats are decoded with PIL and stored as PNG.
PASSTHROUGH_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')
_SHOW = 5  # missing files quoted in a message


def parse_score(text: str, path: str, line: int) -> float:
  """A memorability score in [0, 1] from `text`, found at `path` line `line`.

  Raises:
    InputError: not a number, not finite, or outside [0, 1].
  """
  try:
    score = float(text)
  except ValueError:
    raise InputError(f'{path} line {line}: score {text!r} is not a number.') from None
  if not math.isfinite(score) or not 0.0 <= score <= 1.0:
    raise InputError(f'{path} line {line}: score {text!r} is outside [0, 1].')
  return score


def relative_image_path(text: str, path: str, line: int) -> str:
  """`text` as a normalised relative POSIX path, the image id.

  Raises:
    InputError: empty, absolute, or leaving its folder with `..`.
  """
  rel = text.strip().replace('\\', '/')
  norm = posixpath.normpath(rel) if rel else ''
  if not norm or norm.startswith(('/', '../')) or norm in ('.', '..'):
    raise InputError(
      f'{path} line {line}: expected an image path relative to the image folder, got {text!r}.'
    )
  return norm


def check_duplicate(seen: dict[str, int], image_id: str, path: str, line: int) -> None:
  """Records `image_id` at `line`.

  Raises:
    InputError: it was already seen, naming both lines.
  """
  if image_id in seen:
    raise InputError(
      f'{path}: image {image_id!r} is listed twice, on lines {seen[image_id]} and {line}.'
    )
  seen[image_id] = line


def check_images_exist(image_dir: str, origins: dict[str, str]) -> None:
  """Checks every image file exists.

  Args:
    image_dir: the folder the relative paths start from.
    origins: relative image path -> where it is listed ('file line N'), for the message.

  Raises:
    InputError: the folder or some images are missing (the first few are listed with origins).
  """
  if not os.path.isdir(image_dir):
    raise InputError(f'image folder {image_dir} does not exist.')
  missing = [rel for rel in origins if not os.path.isfile(os.path.join(image_dir, rel))]
  if missing:
    shown = '; '.join(f'{rel} ({origins[rel]})' for rel in missing[:_SHOW])
    raise InputError(
      f'{len(missing)} of {len(origins)} image file(s) missing under {image_dir}, first: {shown}.'
    )


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
