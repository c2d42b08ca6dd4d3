"""A workdir holds one run: its fingerprint is recorded, and a re-run that differs is refused.

`WORKDIR/run.json` records every config field that can change a run's results (data and the
identity of its files, features, K, s_k rule, model, optimiser, batch size, epochs, seed, folds,
protocol, recipe, extractors of the features used) and a fingerprint of the data itself. Re-running
`train` (to resume) or `evaluate` in that workdir with a config that differs in any of them is
refused with one line naming each differing field and both values, because finished folds would
otherwise be mixed with new ones into a table that looks right. Fields that cannot change results
(`IGNORED`: logging, which checkpoint is scored, which folds run, caches, the other modes'
settings) may differ. `--config.resume_changed=True` goes on anyway and the summary records the
differences.
"""

import hashlib
import json
import os

import jax
import ml_collections
import numpy as np

from memjax.datasets import MemorabilityData
from memjax.errors import InputError
from memjax.runtime import atomic_files

RUN_FILE = 'run.json'
# Dotted config prefixes that cannot change a trained fold's results.
IGNORED = (
  'log_every_secs',
  'data.dir',  # paths: where the data is does not matter, what it holds does (`data_fingerprint`)
  'data.csv',
  'data.features_dir',
  'compile_cache',
  'resume_changed',
  'cpu_library_fusions',  # XLA's library vs own dot kernels: last-bit differences at most
  'steps_per_call',  # the same steps, dispatched in other chunk sizes
  'data.device_resident',  # the same rows, gathered on the devices instead of the host
  'finetune.remat',  # recomputes the same backbone activations in the backward pass
  'eval_batch_size',
  'eval',
  'data.run_folds',
  'extract',
  'predict',
  'baseline',
  'sweep',
  'search',
  'transfer',
  'report',
  'distributed',
)
_PATHS = ('weights', 'projection')  # extractor files: their content enters the fingerprint
_SAMPLE_ROWS = 8  # rows at each end of every feature that enter the data fingerprint
_SHOW = 6  # differing fields quoted in the message


def _flatten(tree: dict, prefix: str = '') -> dict:
  out = {}
  for key, value in tree.items():
    name = f'{prefix}{key}'
    if isinstance(value, dict):
      out.update(_flatten(value, f'{name}.'))
    else:
      out[name] = list(value) if isinstance(value, tuple) else value
  return out


def _ignored(name: str) -> bool:
  return any(name == p or name.startswith(p + '.') for p in IGNORED)


def result_fields(config: ml_collections.ConfigDict) -> dict:
  """The config's fields that can change results, dotted names -> JSON values.

  Extractors and branch widths count only for the features the run uses.
  """
  used = set(config.features)
  fields = {}
  for name, value in _flatten(json.loads(json.dumps(config.to_dict()))).items():
    if _ignored(name):
      continue
    parts = name.split('.')
    if parts[0] == 'extractors' and (parts[1] not in used or parts[-1] in _PATHS):
      continue
    if parts[:2] == ['model', 'branch_units'] and parts[2] not in used:
      continue
    fields[name] = value
  return fields


# Field groups added after runs were recorded, with the values that leave them off: a record
# without the group matches a config that leaves it off (fine-tuning, augmentation).
_ADDED_OFF = {
  'finetune.': {'finetune.mode': 'none'},
  'augment.': {'augment.crop_scale': [1.0, 1.0], 'augment.crop_ratio': [1.0, 1.0]},
}


def _added_later_and_off(name: str, old: dict, now: dict) -> bool:
  for prefix, off in _ADDED_OFF.items():
    if name.startswith(prefix) and not any(n.startswith(prefix) for n in old):
      flips = now.get('augment.flip', False) if prefix == 'augment.' else False
      return not flips and all(now.get(k) == v for k, v in off.items())
  return False


def data_fingerprint(data: MemorabilityData, features) -> str:
  """sha256 over the ids, scores, given splits, and a sample of every used feature's values (of
  the extractors' weights when features are computed on the fly)."""
  h = hashlib.sha256()
  h.update('\n'.join(map(str, data.ids)).encode())
  h.update(np.nan_to_num(np.asarray(data.scores, np.float64), nan=-1.0).tobytes())
  for split in data.splits:
    for rows in (split.train, split.val, split.test):
      h.update(np.asarray(rows, np.int64).tobytes())
    h.update(np.nan_to_num(np.asarray(split.scores, np.float64), nan=-1.0).tobytes())
  if data.extractors is not None:  # on the fly: the extractors' preprocessing and weights
    for name in features:
      extractor = data.extractors[name]
      h.update(f'{extractor.feature_dim} {extractor.preprocessing}'.encode())
      for leaf in jax.tree.leaves(extractor.params):
        h.update(np.asarray(leaf).reshape(-1)[:_SAMPLE_ROWS].astype(np.float32).tobytes())
  else:
    for name in features:
      table = data.features[name]
      n = table.shape[0]
      rows = sorted(set(range(min(_SAMPLE_ROWS, n))) | set(range(max(n - _SAMPLE_ROWS, 0), n)))
      h.update(np.asarray(table[rows], np.float32).tobytes())
  return h.hexdigest()


def record_of(config: ml_collections.ConfigDict, data: MemorabilityData) -> dict:
  return {'fields': result_fields(config), 'data': data_fingerprint(data, config.features)}


def check(config: ml_collections.ConfigDict, data: MemorabilityData, workdir: str) -> list:
  """Compares the run with the one `workdir` recorded (if any) and records it if new.

  Returns:
    The differences that `config.resume_changed` allowed (empty when the runs agree).

  Raises:
    InputError: the runs differ and `config.resume_changed` is False.
  """
  path = os.path.join(workdir, RUN_FILE)
  now = record_of(config, data)
  if not os.path.exists(path):
    os.makedirs(workdir, exist_ok=True)
    atomic_files.write_text(path, json.dumps(now, indent=2, sort_keys=True))
    return []
  try:
    with open(path, encoding='utf-8') as f:
      before = json.load(f)
    old_fields, old_data = before['fields'], before['data']
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise InputError(
      f'{path} is damaged ({e}); it records which run this workdir holds. Use a new workdir, or '
      'delete the file to adopt the current config.'
    ) from e
  names = sorted(set(old_fields) | set(now['fields']))
  names = [n for n in names if not _added_later_and_off(n, old_fields, now['fields'])]
  diffs = [
    f'{n}: {old_fields.get(n, "<unset>")!r} -> {now["fields"].get(n, "<unset>")!r}'
    for n in names
    if old_fields.get(n, '<unset>') != now['fields'].get(n, '<unset>')
  ]
  if old_data != now['data']:
    diffs.append('the data (ids, scores, splits or feature values) changed')
  if diffs and not config.resume_changed:
    more = f'; and {len(diffs) - _SHOW} more' if len(diffs) > _SHOW else ''
    shown = '; '.join(diffs[:_SHOW]) + more
    raise InputError(
      f'{workdir} holds another run (recorded in {RUN_FILE}): {shown}. Use a new --workdir, or '
      '--config.resume_changed=True to continue it anyway.'
    )
  return diffs
