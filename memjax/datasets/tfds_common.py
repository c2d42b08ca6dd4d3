"""What the TFDS builders (`tfds_lamem`, `tfds_image_folder`) share beyond `score_files`: their
`DatasetInfo`, manual folder and examples, the image values handed to TFDS, the build command.
"""

import os
import sys

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from memjax.errors import InputError
from memjax.features import image_decode

_ORIENTATION = 0x0112  # the EXIF tag

# Formats whose bytes TFDS stores as they are (tf.image.decode_image reads them as one frame);
# other formats, and files TensorFlow would decode otherwise than `image_decode` (EXIF
# orientation, more than 8 bits, alpha, palette, CMYK, animation), are decoded by `image_decode`
# and stored as PNG.
PASSTHROUGH_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')


def scored_images_info(
  builder: tfds.core.DatasetBuilder, description: str, score_doc: str, **details
) -> tfds.core.DatasetInfo:
  """The `DatasetInfo` of a builder of scored images: `image` (RGB), `id` (text) and `score`
  (float32, described by `score_doc`), in a fixed order, supervised as (image, score); `details`
  adds fields such as `homepage` and `citation`."""
  return tfds.core.DatasetInfo(
    builder=builder,
    description=description,
    features=tfds.features.FeaturesDict(
      {
        'image': tfds.features.Image(shape=(None, None, 3)),
        'id': tfds.features.Text(),
        'score': tfds.features.Scalar(np.float32, doc=score_doc),
      }
    ),
    supervised_keys=('image', 'score'),
    disable_shuffling=True,
    **details,
  )


def manual_dir(dl_manager: tfds.download.DownloadManager, dataset: str) -> str:
  """The folder the user placed the data in.

  Raises:
    InputError: TFDS's own message for a missing or empty `manual_dir`, naming `dataset`.
  """
  try:
    return os.fspath(dl_manager.manual_dir)
  except AssertionError as e:
    raise InputError(f'{dataset}: {e}') from e


def scored_examples(image_dir: str, entries: list[tuple[str, float, int]]):
  """(key, example) of each (image id, score, line) entry, in order: the image under
  `image_dir`, its id and its float32 score."""
  for index, (image_id, score, _) in enumerate(entries):
    yield (
      index,
      {
        'image': image_value(os.path.join(image_dir, image_id)),
        'id': image_id,
        'score': np.float32(score),
      },
    )


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
