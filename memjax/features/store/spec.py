"""The on-disk format of a feature store (version 1). A store is a directory holding:

* `ids.txt`: one image id per line (UTF-8, `\\n` line ends), in row order. Ids are non-empty,
  unique, and carry no leading or trailing whitespace.
* `<name>.npy`, one per feature (`cnn.npy`, `semantic.npy`, `clip.npy`, ...): a plain NumPy
  `.npy` array of shape [N, D] and dtype float16 or float32 whose row i belongs to line i of
  `ids.txt`, loadable with `np.load(path, mmap_mode='r')`. Feature names use letters, digits,
  `_` and `-`, and start with a letter or digit.
* `metadata.json`::

    {"format_version": 1, "count": N, "source": <anything JSON, e.g. "LaMem images/">,
     "features": {"cnn": {"dim": 4096, "dtype": "float16", "extractor": "vgg16_fc7",
                          "weights_sha256": "<64 hex digits>" or null,
                          "input_size": [224, 224] (or an int, or null),
                          "preprocessing": "resize 256, center crop 224, VGG mean"}, ...}}

  `features` lists exactly the features the store serves; extra keys are kept as they are.
* `COMPLETE`: the completeness marker, written last. A directory without it is an unfinished
  store and is never read, so a crash never leaves a store that looks complete.
* `progress.json`: only while `writer.StoreWriter` is filling the store (rows done per
  feature); it is removed once `COMPLETE` exists.
* `finite_checked.json` (optional, a cache): which arrays are known to hold no NaN or inf, keyed
  by each file's identity and change times (`values`). Deleting it only makes the next
  `read_store` scan the arrays again.

This module holds the format's constants and the checks its reader and writers share. Stores
made elsewhere (e.g. CLIP features) need only follow the format.
"""

import json
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from memjax.errors import InputError
from memjax.runtime import atomic_files

FORMAT_VERSION = 1
IDS_FILE, METADATA_FILE, COMPLETE_FILE = 'ids.txt', 'metadata.json', 'COMPLETE'
PROGRESS_FILE = 'progress.json'
DTYPES = ('float16', 'float32')
FEATURE_KEYS = ('extractor', 'weights_sha256', 'input_size', 'preprocessing')
NAME_PATTERN = re.compile(r'[A-Za-z0-9][A-Za-z0-9_-]*')
_SHA256 = re.compile(r'[0-9a-f]{64}')
SHOW = 5  # offending rows / ids quoted in a message


def has_control_characters(text: str) -> bool:
  """Whether `text` holds a control character (Unicode category Cc) or a byte-order mark: no
  image id may (nor may a score file's image path, which becomes an id)."""
  return '\ufeff' in text or any(unicodedata.category(c) == 'Cc' for c in text)


def is_complete(directory: str | os.PathLike) -> bool:
  """Whether `directory` holds a finished store (its `COMPLETE` marker exists)."""
  return os.path.isfile(os.path.join(directory, COMPLETE_FILE))


def check_feature_name(name: str) -> str:
  """Returns `name` if it can name a feature file.

  Raises:
    InputError: it does not match `NAME_PATTERN`.
  """
  if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
    raise InputError(f'feature name {name!r} must match {NAME_PATTERN.pattern}.')
  return name


def check_dtype(dtype: str | np.dtype) -> str:
  """Returns the store dtype name, 'float16' or 'float32'.

  Raises:
    InputError: any other dtype.
  """
  name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
  if name not in DTYPES:
    raise InputError(f'feature store dtype must be one of {DTYPES}, got {dtype!r}.')
  return name


def validate_ids(ids: Iterable[str], where: str = 'ids') -> list[str]:
  """Checks ids are non-empty, unique, unpadded and free of control characters; returns a list.

  Raises:
    InputError: naming the offending id and its position(s) in `where`.
  """
  seen: dict[str, int] = {}
  out = []
  for i, image_id in enumerate(ids):
    image_id = str(image_id)
    if not image_id or image_id.strip() != image_id or has_control_characters(image_id):
      raise InputError(
        f'{where}[{i}]: id {image_id!r} is empty, has surrounding whitespace or holds control '
        'characters (line ends, NUL, a byte-order mark).'
      )
    if image_id in seen:
      raise InputError(f'{where}: id {image_id!r} appears at positions {seen[image_id]} and {i}.')
    seen[image_id] = i
    out.append(image_id)
  if not out:
    raise InputError(f'{where}: no ids; a feature store needs at least one row.')
  return out


def cast_rows(
  name: str,
  rows,
  num_rows: int | None,
  dim: int | None,
  dtype: str,
  *,
  where: str = 'feature store',
  first_row: int = 0,
  ids: Sequence[str] | None = None,
) -> np.ndarray:
  """`rows` as a [n, D] array of `dtype`, checked for shape and finiteness after the cast.

  Args:
    name: the feature name, for messages.
    rows: the values, [n, D].
    num_rows: the expected n, or None for any.
    dim: the expected D, or None for any.
    dtype: the stored dtype.
    where: the store, for messages (`feature store /path`).
    first_row: the store row of `rows[0]`, so that messages name store rows.
    ids: the store's ids, to name bad rows by id too.

  Raises:
    InputError: not a 2-D numeric array, wrong row count or dimension, or non-finite values
      (float16 overflows above 65504), naming the store, the feature and the first bad rows.
  """
  array = np.asarray(rows)
  if array.dtype.kind not in 'fiu':
    raise InputError(f'{where}: feature {name!r} has dtype {array.dtype}; expected a float array.')
  if array.ndim != 2:
    raise InputError(f'{where}: feature {name!r} has shape {array.shape}; expected [rows, dim].')
  if num_rows is not None and array.shape[0] != num_rows:
    raise InputError(
      f'{where}: feature {name!r} has {array.shape[0]} rows; expected {num_rows} (one per id).'
    )
  if dim is not None and array.shape[1] != dim:
    raise InputError(f'{where}: feature {name!r} has dimension {array.shape[1]}; expected {dim}.')
  with np.errstate(over='ignore', invalid='ignore'):  # overflow is reported just below
    array = array.astype(dtype, copy=False)
  bad = first_row + np.flatnonzero(~np.isfinite(array).all(axis=1))
  if bad.size:
    named = lambda r: f'{r} ({ids[r]!r})' if ids is not None and r < len(ids) else str(r)
    shown = [named(r) for r in bad[:SHOW].tolist()]
    raise InputError(
      f'{where}: feature {name!r} has NaN or inf in {bad.size} row(s), first {", ".join(shown)}, '
      f'after casting to {dtype} (float16 overflows above 65504); nothing of them was written.'
    )
  return array


def build_metadata(metadata: Mapping, dims: Mapping[str, int], dtype: str, count: int) -> dict:
  """The full `metadata.json` content from the caller's descriptive fields.

  Args:
    metadata: `{'features': {name: {extractor, weights_sha256, input_size, preprocessing}},
      'source': ...}`; every stored feature needs an entry; `source` is optional and free-form.
    dims: feature name -> dimension D of the stored array.
    dtype: the stored dtype.
    count: number of rows N.

  Returns:
    A dict with `format_version`, `count`, `source` and `features` (each with `dim`, `dtype`).

  Raises:
    InputError: a feature without an entry, a missing or malformed key, or a `dim`/`dtype` given
      that disagrees with the data.
  """
  if not isinstance(metadata, Mapping) or not isinstance(metadata.get('features'), Mapping):
    raise InputError("feature store metadata needs a 'features' mapping: name -> descriptor.")
  described = metadata['features']
  unknown = sorted(set(described) - set(dims))
  if unknown:
    raise InputError(f'metadata describes features {unknown} that are not written: {sorted(dims)}.')
  features = {}
  for name, dim in dims.items():
    entry = described.get(name)
    if not isinstance(entry, Mapping):
      raise InputError(f"metadata['features'] has no entry for feature {name!r}.")
    entry = dict(entry)
    check_descriptor(name, entry, 'metadata')
    for key, value in (('dim', int(dim)), ('dtype', dtype)):
      if key in entry and entry[key] != value:
        raise InputError(
          f'metadata for {name!r} says {key}={entry[key]!r}, the data has {value!r}.'
        )
      entry[key] = value
    features[name] = entry
  extra = {k: v for k, v in metadata.items() if k not in ('features', 'format_version', 'count')}
  return {
    'format_version': FORMAT_VERSION,
    'count': int(count),
    'source': extra.pop('source', None),
    **extra,
    'features': features,
  }


def check_descriptor(name: str, entry: Mapping, where: str) -> None:
  missing = [k for k in FEATURE_KEYS if k not in entry]
  if missing:
    raise InputError(
      f'{where}: feature {name!r} lacks {missing}; every feature needs {FEATURE_KEYS}.'
    )
  sha = entry['weights_sha256']
  if sha is not None and not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
    raise InputError(f'{where}: feature {name!r} weights_sha256 must be 64 lowercase hex or null.')
  size = entry['input_size']
  sizes = size if isinstance(size, list | tuple) else [size]
  if size is not None and not all(isinstance(s, int) and s > 0 for s in sizes):
    raise InputError(f'{where}: feature {name!r} input_size must be an int, [h, w] or null.')
  for key in ('extractor', 'preprocessing'):
    if not isinstance(entry[key], str):
      raise InputError(f'{where}: feature {name!r} {key} must be a string, got {entry[key]!r}.')


def sync_dir(directory: str) -> None:
  """fsyncs a directory so that renames inside it survive a power cut (no-op where unsupported)."""
  try:
    fd = os.open(directory, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def ids_text(ids: Sequence[str]) -> str:
  return ''.join(f'{i}\n' for i in ids)


def finish(directory: str, meta: dict) -> None:
  """Writes `metadata.json`, then the `COMPLETE` marker, each atomically: the store's last step."""
  atomic_files.write_text(os.path.join(directory, METADATA_FILE), json.dumps(meta, indent=2) + '\n')
  marker = {'format_version': FORMAT_VERSION, 'count': meta['count']}
  atomic_files.write_text(os.path.join(directory, COMPLETE_FILE), json.dumps(marker) + '\n')
  sync_dir(directory)


def read_ids(path: str) -> list[str]:
  """Reads an `ids.txt`.

  Raises:
    InputError: unreadable, empty, a blank or padded line, a control character (NUL, a stray CR),
      or a duplicate id (naming the id and both line numbers).
  """
  try:
    with open(path, encoding='utf-8-sig', newline='') as f:  # a byte-order mark is dropped
      lines = f.read().split('\n')
  except (OSError, UnicodeDecodeError) as e:
    raise InputError(f'cannot read {path}: {e}') from e
  lines = [line.removesuffix('\r') for line in lines]
  while lines and not lines[-1]:
    lines.pop()
  seen: dict[str, int] = {}
  for number, image_id in enumerate(lines, start=1):
    if not image_id.strip():
      raise InputError(f'{path} line {number} (the id): empty; expected one image id per line.')
    if image_id.strip() != image_id or has_control_characters(image_id):
      raise InputError(
        f'{path} line {number}: expected an image id (no padding or control characters), '
        f'got {image_id!r}.'
      )
    if image_id in seen:
      raise InputError(
        f'{path}: id {image_id!r} appears twice, on lines {seen[image_id]} and {number}.'
      )
    seen[image_id] = number
  if not lines:
    raise InputError(f'{path} is empty; expected one image id per line.')
  return lines


def _positive_int(value) -> bool:
  return type(value) is int and value > 0  # not a bool


def read_metadata(directory: str) -> dict:
  """Reads and checks a store's `metadata.json`.

  Raises:
    InputError: missing or invalid JSON, another format version, or malformed entries.
  """
  path = os.path.join(directory, METADATA_FILE)
  try:
    with open(path, encoding='utf-8') as f:
      meta = json.load(f)
  except FileNotFoundError as e:
    raise InputError(f'{path} is missing; every feature store needs one.') from e
  except (OSError, ValueError, RecursionError) as e:  # RecursionError: absurdly deep nesting
    raise InputError(f'{path} is not valid JSON: {str(e)[:200]}') from e
  if not isinstance(meta, dict):
    raise InputError(f'{path}: expected a JSON object.')
  version = meta.get('format_version')
  if type(version) is not int or version != FORMAT_VERSION:
    raise InputError(f'{path}: format_version {version!r:.40}; this memjax reads {FORMAT_VERSION}.')
  if not _positive_int(meta.get('count')) or not isinstance(meta.get('features'), dict):
    raise InputError(f"{path}: expected a positive int 'count' and a 'features' object.")
  if not meta['features']:
    raise InputError(f"{path}: 'features' is empty; a store serves at least one feature.")
  for name, entry in meta['features'].items():
    if not NAME_PATTERN.fullmatch(name):
      raise InputError(
        f'{path}: feature name {name!r:.60} must match {NAME_PATTERN.pattern} (it names a file).'
      )
    if not isinstance(entry, dict) or not _positive_int(entry.get('dim')):
      raise InputError(f"{path}: feature {name!r} needs an object with a positive int 'dim'.")
    if entry.get('dtype') not in DTYPES:
      raise InputError(
        f"{path}: feature {name!r} needs 'dtype' in {DTYPES}, got {entry.get('dtype')!r}."
      )
    check_descriptor(name, entry, path)
  return meta
