"""Test helper: ResMem in `torch.nn`, independent of memjax's Flax code and of torchvision.

`ResMem` is resmem's `ResMem` module (resmem 1.1.6, `resmem/__init__.py`) with its ResNet-152
written out as torchvision's `resnet152` builds it (`Bottleneck` with the stride on the 3x3,
a `downsample` of conv 1x1 + BatchNorm on each stage's first block, the same attribute names),
so it loads the package's `model.pt` state_dict with `strict=True`. BatchNorm runs on its
running statistics (eval mode), dropout is off. The widths are parameters, so it also loads the
narrow random files of tests/resmem_reference.py. `forward` returns the ResNet's average pool
(the `pooled` feature) beside the score.

`transformer` is resmem's preprocessing as torchvision computes it on a PIL image:
`Resize((256, 256))` (PIL bilinear, the whole image), `CenterCrop(227)` (offset
int(round((256 - 227) / 2.0)) = 14), `ToTensor()` (RGB / 255, CHW).
"""

import torch
from PIL import Image
from torch import nn
from torch.nn import functional


class Bottleneck(nn.Module):
  """torchvision.models.resnet.Bottleneck (v1.5: the stride on the 3x3 conv)."""

  expansion = 4

  def __init__(self, inplanes: int, planes: int, stride: int, downsample: nn.Module | None):
    super().__init__()
    self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(planes)
    self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(planes)
    self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
    self.bn3 = nn.BatchNorm2d(planes * self.expansion)
    self.relu = nn.ReLU(inplace=True)
    self.downsample = downsample

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    out = self.bn3(self.conv3(out))
    return self.relu(out + identity)


class ResNet(nn.Module):
  """torchvision.models.resnet.ResNet of Bottlenecks: (3, 8, 36, 3) at width 64 is resnet152."""

  def __init__(self, layers=(3, 8, 36, 3), width: int = 64, num_classes: int = 1000):
    super().__init__()
    self.inplanes = width
    self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
    self.bn1 = nn.BatchNorm2d(width)
    self.relu = nn.ReLU(inplace=True)
    self.maxpool = nn.MaxPool2d(3, 2, 1)
    for i, blocks in enumerate(layers):
      setattr(self, f'layer{i + 1}', self._make_layer(width * 2**i, blocks, 1 if i == 0 else 2))
    self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    self.fc = nn.Linear(self.inplanes, num_classes)
    self.stages = len(layers)

  def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
    downsample = None
    if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
      downsample = nn.Sequential(
        nn.Conv2d(self.inplanes, planes * Bottleneck.expansion, 1, stride, bias=False),
        nn.BatchNorm2d(planes * Bottleneck.expansion),
      )
    layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
    self.inplanes = planes * Bottleneck.expansion
    layers += [Bottleneck(self.inplanes, planes, 1, None) for _ in range(1, blocks)]
    return nn.Sequential(*layers)

  def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(average pool [B, C], logits [B, classes])."""
    x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
    for i in range(self.stages):
      x = getattr(self, f'layer{i + 1}')(x)
    pooled = torch.flatten(self.avgpool(x), 1)
    return pooled, self.fc(pooled)


class ResMem(nn.Module):
  """resmem.ResMem: the ResNet's logits and an AlexNet-like branch, then fc6..fc12 + sigmoid."""

  def __init__(
    self,
    layers=(3, 8, 36, 3),
    width: int = 64,
    classes: int = 1000,
    alex=(48, 256, 384, 384, 256),
    head=(4096, 4096, 2048, 1024, 512, 256),
  ):
    super().__init__()
    self.features = ResNet(layers, width, classes)
    self.conv1 = nn.Conv2d(3, alex[0], kernel_size=11, stride=4)
    self.pool1 = nn.MaxPool2d(3, 2)
    self.lrn1 = nn.LocalResponseNorm(5)
    self.conv2 = nn.Conv2d(alex[0], alex[1], kernel_size=5, stride=1, padding=2, groups=2)
    self.pool2 = nn.MaxPool2d(3, 2)
    self.lrn2 = nn.LocalResponseNorm(5)
    self.conv3 = nn.Conv2d(alex[1], alex[2], 3, 1, 1, groups=2)
    self.conv4 = nn.Conv2d(alex[2], alex[3], 3, 1, 1, groups=2)
    self.conv5 = nn.Conv2d(alex[3], alex[4], 3, 1, 1, groups=2)
    self.pool5 = nn.MaxPool2d(3, 2)
    widths = [alex[4] * 6 * 6 + classes, *head, 1]
    for k in range(len(widths) - 1):
      setattr(self, f'fc{6 + k}', nn.Linear(widths[k], widths[k + 1]))
    self.fcs = len(widths) - 1

  def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(pooled [B, C], score [B]) of x [B, 3, 227, 227] in [0, 1]."""
    cnv = self.lrn1(self.pool1(functional.relu(self.conv1(x))))
    cnv = self.lrn2(self.pool2(functional.relu(self.conv2(cnv))))
    cnv = functional.relu(self.conv3(cnv))
    cnv = functional.relu(self.conv4(cnv))
    cnv = self.pool5(functional.relu(self.conv5(cnv)))
    pooled, logits = self.features(x)
    hid = torch.cat((torch.flatten(cnv, 1), logits), 1)
    for k in range(6, 6 + self.fcs - 1):
      hid = functional.relu(getattr(self, f'fc{k}')(hid))
    return pooled, torch.sigmoid(getattr(self, f'fc{5 + self.fcs}')(hid))[:, 0]


def transformer(image: Image.Image) -> torch.Tensor:
  """resmem's `transformer` on an RGB PIL image: float32 [3, 227, 227] in [0, 1]."""
  image = image.resize((256, 256), Image.Resampling.BILINEAR)
  offset = int(round((256 - 227) / 2.0))
  image = image.crop((offset, offset, offset + 227, offset + 227))
  pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
  return pixels.reshape(227, 227, 3).permute(2, 0, 1).float() / 255.0
