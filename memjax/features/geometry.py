"""How a decoded image becomes the square an extractor takes: resize kernel, size rounding, crop.

memjax's own recipe (VGG, EfficientNet-Lite): the shorter side resized to `resize_to` with PIL's
antialiased bilinear filter, the longer side rounded, then the centre `image_size` crop. The ViT
families follow their reference processors instead, exactly:

* HF CLIP (`CLIPImageProcessor`), HF DINOv2 (`BitImageProcessor`): PIL bicubic, the longer side
  truncated, centre crop at offset floor((n - s) / 2);
* OpenAI / OpenCLIP CLIP (torchvision `Resize`, `CenterCrop`): the same, the crop at offset
  round((n - s) / 2);
* SigLIP (`SiglipImageProcessor`, OpenCLIP's 'squash', big_vision): the whole image resized to
  s x s with PIL bicubic (SigLIP 2's processor: bilinear), no crop (stretched);
* DINOv3 (`DINOv3ViTImageProcessor`): the whole image resized to s x s, bilinear, antialiased, in
  float after the rescale to [0, 1] (torchvision on a float tensor, which computes PIL's filter):
  `pixels='float32'`, PIL's resize of each channel in mode 'F', values not rounded to 8 bits.

"Truncated": the longer side is int(resize_to * long / short), as transformers'
`get_resize_output_image_size` and torchvision's `Resize` compute it. All resizing is PIL's (the
reference processors' PIL path), so memjax's uint8 crops are the reference's, bit for bit, and
its float32 ones within float rounding.
"""

import dataclasses

import numpy as np
from PIL import Image

RESAMPLE = {'bilinear': Image.Resampling.BILINEAR, 'bicubic': Image.Resampling.BICUBIC}
ROUNDING = ('round', 'truncate')
CROPS = ('center', 'center_round', 'stretch')
PIXELS = ('uint8', 'float32')


@dataclasses.dataclass(frozen=True)
class Geometry:
  """The image geometry of one extractor.

  Attributes:
    resize_to: the shorter side after resizing ('stretch': the side of the stretched square).
    image_size: side S of the square the extractor takes.
    resample: PIL filter, 'bilinear' or 'bicubic' (both antialiased, as PIL resizes).
    rounding: the longer side after resizing: 'round' (memjax's recipe) or 'truncate' (int(), as
      transformers and torchvision).
    crop: 'center' (offset floor, transformers), 'center_round' (offset round-half-even,
      torchvision's CenterCrop) or 'stretch' (the whole image resized to `resize_to` squared,
      aspect not kept; then, when `resize_to` > S, torchvision's centre crop: ResMem's 256 / 227;
      SigLIP: `resize_to` = S, no crop).
    pixels: 'uint8' (the resized image rounded to 8 bits, as PIL resizes RGB images) or
      'float32' (each channel resized in PIL's float mode, values 0..255 not rounded: DINOv3's
      processor resizes after the rescale to float).
  """

  resize_to: int
  image_size: int
  resample: str = 'bilinear'
  rounding: str = 'round'
  crop: str = 'center'
  pixels: str = 'uint8'

  def __post_init__(self):
    if (
      self.resample not in RESAMPLE
      or self.rounding not in ROUNDING
      or self.crop not in CROPS
      or self.pixels not in PIXELS
    ):
      raise ValueError(f'bad Geometry {self}: resample {list(RESAMPLE)}, rounding {ROUNDING}, '
                       f'crop {CROPS}, pixels {PIXELS}')  # fmt: skip

  @property
  def is_default(self) -> bool:
    """Whether this is memjax's own recipe (bilinear, rounded, centre crop, 8-bit pixels)."""
    return (self.resample, self.rounding, self.crop, self.pixels) == (
      'bilinear',
      'round',
      'center',
      'uint8',
    )

  def resized_size(self, width: int, height: int) -> tuple[int, int]:
    """(width, height) after resizing a `width` x `height` image."""
    if self.crop == 'stretch':
      return self.resize_to, self.resize_to
    short, long = min(width, height), max(width, height)
    if self.rounding == 'truncate':
      new_long = int(self.resize_to * long / short)
    else:
      new_long = max(self.resize_to, round(long * (self.resize_to / short)))
    return (self.resize_to, new_long) if width <= height else (new_long, self.resize_to)

  def apply(self, image: Image.Image) -> np.ndarray:
    """[S, S, 3] of an RGB PIL image: uint8, or float32 0..255 for `pixels='float32'`."""
    size = self.resized_size(*image.size)
    if self.pixels == 'float32':
      box = self._box(size)
      return np.stack([_resize_float(c, size, self.resample, box) for c in image.split()], -1)
    if size != image.size:
      image = image.resize(size, RESAMPLE[self.resample])
    box = self._box(size)
    return np.asarray(image if box is None else image.crop(box))

  def _box(self, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The crop (left, top, right, bottom) of the resized image of `size`; None: all of it."""
    s = self.image_size
    if self.crop == 'stretch' and size[0] == s:
      return None
    if self.crop == 'center':
      left, top = (size[0] - s) // 2, (size[1] - s) // 2
    else:  # torchvision's CenterCrop ('center_round', and 'stretch' to a larger square)
      left, top = int(round((size[0] - s) / 2.0)), int(round((size[1] - s) / 2.0))
    return left, top, left + s, top + s

  def describe(self) -> str:
    """The geometry in words, for the feature store's metadata."""
    s = self.image_size
    if self.is_default:
      return f'resize shorter side to {self.resize_to}, center crop {s}'
    if self.crop == 'stretch' and self.resize_to == s and self.pixels == 'float32':
      return f'resize the whole image to {s} x {s} ({self.resample} in float32, stretched, no crop)'
    if self.crop == 'stretch' and self.resize_to == s:
      return f'resize the whole image to {s} x {s} ({self.resample}, stretched, no crop)'
    if self.crop == 'stretch':
      r = self.resize_to
      return (
        f'resize the whole image to {r} x {r} ({self.resample}, stretched), center crop {s} '
        '(offset round)'
      )
    offset = 'floor' if self.crop == 'center' else 'round'
    return (
      f'resize shorter side to {self.resize_to} ({self.resample}, longer side '
      f'{"truncated" if self.rounding == "truncate" else "rounded"}), center crop {s} '
      f'(offset {offset})'
    )


def _resize_float(channel: Image.Image, size: tuple[int, int], resample: str, box) -> np.ndarray:
  """One 8-bit channel resized to `size` in PIL's float mode, then cut to `box` (None: not
  cut): float32 [S, S], not rounded."""
  channel = channel.convert('F')
  if size != channel.size:
    channel = channel.resize(size, RESAMPLE[resample])
  return np.asarray(channel if box is None else channel.crop(box), np.float32)
