"""The same rows' images for extractors that want different image geometries.

`registry.build_groups` groups a run's extractors by geometry (one group when they can share
one). Extraction and prediction decode each image once per group, in step, and take the rows'
status from every group's pipeline here, so a row counts as read only when every geometry read it.
"""

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from memjax.features import images
from memjax.features.extractor import Extractor
from memjax.features.geometry import Geometry


def in_order(groups: Sequence[Mapping[str, Extractor]], names: Sequence[str]) -> dict:
  """Feature name -> extractor over all `groups`, in the order of `names`."""
  extractors = {n: e for group in groups for n, e in group.items()}
  return {n: extractors[n] for n in names}


def geometry_of(group: Mapping[str, Extractor]) -> Geometry:
  """The image geometry every extractor of `group` takes."""
  return next(iter(group.values())).geometry


def group_batches(
  paths: Sequence[str],
  groups: Sequence[Mapping[str, Extractor]],
  *,
  batch_size: int,
  start: int = 0,
) -> Iterator[tuple[dict[str, np.ndarray], tuple[np.ndarray, ...]]]:
  """Batches of `paths[start:]` in order, one image pipeline per group (`images.image_batches`).

  Yields:
    (rows, pixels): `rows` holds the batch's `index` (-1 for padding), `ok` (read in every
    geometry) and `error` (the first group's that has one); `pixels` one image array per group,
    in the order of `groups`.
  """
  streams = []
  for group in groups:
    first = next(iter(group.values()))
    streams.append(images.image_batches(
      paths,
      batch_size=batch_size,
      resize_to=first.resize_to,
      image_size=first.image_size,
      start=start,
      geometry=first.geometry,
    ))  # fmt: skip
  for batches in zip(*streams, strict=True):
    yield _same_rows(batches), tuple(b['image'] for b in batches)


def _same_rows(batches: Sequence[dict]) -> dict[str, np.ndarray]:
  """The rows' `index`, `ok` and `error` over the pipelines' batches of the same rows."""
  first = batches[0]
  ok = np.logical_and.reduce([b['ok'] for b in batches])
  error = first['error'].copy()
  for b in batches[1:]:
    error = np.where(error == b'', b['error'], error)
  return {'index': first['index'], 'ok': ok, 'error': error}
