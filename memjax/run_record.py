"""The record of a run: what a workdir holds, and the one check every mode makes against it.

`WORKDIR/run.json` is written when a run starts in a new workdir and is never changed after:

* `kind`: the mode that made the workdir (`train`, `baseline`, `sweep`, `search`); a mode of
  another kind is refused there before anything is written (`check_kind`);
* `config`: the full config, from which `evaluate`, `predict`, `transfer` and `report` rebuild
  the run with only `--workdir` (`memjax/recorded_config.py`);
* `fields`: every config field that can change results (`result_fields`);
* `extractors`: the identity of the extractor behind every feature (kind, variant, output,
  pooled depths, flip, dtype, preprocessing, weights sha256, dimension), from the feature store's
  own record or from the extractors built on the fly (`data_identity.feature_identities`);
* `data`: a fingerprint of the data itself (`data_identity.data_fingerprint`).

Fields fall into three groups, written down here only:
* `IGNORED`: how a run executes (logging, batch size of evaluation, devices, paths, which folds
  or checkpoint are scored, other modes' settings): may always differ;
* `MEANING`: what the trained parameters mean (features, extractors, head, K, s_k rule,
  standardisation, fine-tuning): may never differ, in any mode;
* the rest (data, optimiser, seed, epochs, recipe): how the parameters were trained; `train`
  (resuming) and `evaluate` refuse a difference unless `config.resume_changed`.

Each checkpoint keeps the `fields` of the run that wrote it (`checkpoint_meta.run_meta`), checked
against the same groups by `compare`.
"""

import json
import os

import ml_collections
from absl import logging

from memjax import data_identity, results
from memjax.datasets import MemorabilityData
from memjax.errors import InputError

RUN_FILE = 'run.json'
FORMAT = 2
# The kind of workdir each mode runs in (report reads any kind; extract writes a feature store).
MODE_KINDS = {
  'train': 'train',
  'evaluate': 'train',
  'predict': 'train',
  'transfer': 'train',
  'baseline': 'baseline',
  'sweep': 'sweep',
  'search': 'search',
}
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
# Dotted config prefixes that say what the trained parameters mean.
MEANING = (
  'features',
  'extractors',
  'model',
  'num_classes',
  'score_values',
  'standardize',
  'finetune',
)
# A baseline workdir's results depend on the data, the features and the baseline's own fields.
BASELINE_FIELDS = ('seed', 'features', 'extractors', 'data', 'baseline')
_PATHS = ('weights', 'projection')  # extractor files: their content is in the identity
_SHOW = 6  # differing fields quoted in the message


def flatten(tree: dict, prefix: str = '') -> dict:
  out = {}
  for key, value in tree.items():
    name = f'{prefix}{key}'
    if isinstance(value, dict):
      out.update(flatten(value, f'{name}.'))
    else:
      out[name] = list(value) if isinstance(value, tuple) else value
  return out


def _under(name: str, prefixes) -> bool:
  return any(name == p or name.startswith(p + '.') for p in prefixes)


def used_fields(flat: dict, used) -> dict:
  """`flat` without the extractors' file paths and the entries of features the run does not use
  (extractors and branch widths count only for the features in `used`)."""
  fields = {}
  for name, value in flat.items():
    parts = name.split('.')
    if parts[0] == 'extractors' and (parts[1] not in used or parts[-1] in _PATHS):
      continue
    if parts[:2] == ['model', 'branch_units'] and parts[2] not in used:
      continue
    fields[name] = value
  return fields


def result_fields(config: ml_collections.ConfigDict, kind: str = 'train') -> dict:
  """The config's fields that can change a `kind` run's results, dotted names -> JSON values."""
  flat = flatten(json.loads(json.dumps(config.to_dict())))
  if kind == 'baseline':  # its own settings count, the MLP's do not
    kept = {
      n: v
      for n, v in flat.items()
      if _under(n, BASELINE_FIELDS) and (n.startswith('baseline.') or not _under(n, IGNORED))
    }
  else:
    kept = {n: v for n, v in flat.items() if not _under(n, IGNORED)}
  return used_fields(kept, config.features)


def meaning(fields: dict) -> dict:
  """The `MEANING` part of `fields`."""
  return {n: v for n, v in fields.items() if _under(n, MEANING)}


# Field groups a record may lack (fine-tuning, augmentation: runs recorded without them trained
# with neither), with the values that leave them off. A record without the group matches a config
# that leaves it off, and differs from one that turns it on.
_OPTIONAL_OFF = {
  'finetune.': {'finetune.mode': 'none'},
  'augment.': {'augment.crop_scale': [1.0, 1.0], 'augment.crop_ratio': [1.0, 1.0]},
}


def _absent_and_off(name: str, old: dict, now: dict) -> bool:
  """Whether `name` belongs to a group of `_OPTIONAL_OFF` that `old` lacks and `now` leaves off."""
  for prefix, off in _OPTIONAL_OFF.items():
    if name.startswith(prefix) and not any(n.startswith(prefix) for n in old):
      flips = now.get('augment.flip', False) if prefix == 'augment.' else False
      return not flips and all(now.get(k) == v for k, v in off.items())
  return False


def compare(old: dict, now: dict, *, only_meaning: bool = False) -> list[str]:
  """`name: old -> now` for every field that differs between two `result_fields`.

  Args:
    old: the recorded fields.
    now: the fields of the config at hand.
    only_meaning: compare the `MEANING` fields only.
  """
  if only_meaning:
    old, now = meaning(old), meaning(now)
  names = sorted(set(old) | set(now))
  names = [n for n in names if not _absent_and_off(n, old, now)]
  return [
    f'{n}: {old.get(n, "<unset>")!r} -> {now.get(n, "<unset>")!r}'
    for n in names
    if old.get(n, '<unset>') != now.get(n, '<unset>')
  ]


def record_of(
  config: ml_collections.ConfigDict, data: MemorabilityData, kind: str = 'train'
) -> dict:
  """The record a `kind` run of `config` on `data` writes.

  Raises:
    InputError: the data lacks a feature of `config.features`.
  """
  data.feature_dims(config.features)
  return {
    'format': FORMAT,
    'kind': kind,
    'fields': result_fields(config, kind),
    'data': data_identity.data_fingerprint(data, config.features),
    'extractors': data_identity.feature_identities(data, config.features),
    'config': json.loads(json.dumps(config.to_dict())),
  }


def claim(config: ml_collections.ConfigDict, workdir: str, kind: str) -> None:
  """Records a `kind` run that loads no data itself (sweep, search: their trials keep their own
  records), or checks that `workdir` holds one.

  Raises:
    InputError: the workdir holds another kind of run.
  """
  check_kind(workdir, kind)
  if read(workdir) is None:
    record = {
      'format': FORMAT,
      'kind': kind,
      'fields': result_fields(config, kind),
      'data': None,
      'extractors': None,
      'config': json.loads(json.dumps(config.to_dict())),
    }
    results.write_json(path_of(workdir), record)


def path_of(workdir: str) -> str:
  return os.path.join(workdir, RUN_FILE)


def read(workdir: str) -> dict | None:
  """The workdir's record, or None when it has none.

  Raises:
    InputError: the record cannot be read or lacks what every record holds.
  """
  path = path_of(workdir)
  if not os.path.exists(path):
    return None
  try:
    with open(path, encoding='utf-8') as f:
      record = json.load(f)
    record['fields'], record['data']  # noqa: B018 (every format has both)
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise InputError(
      f'{path} is damaged ({e}); it records which run this workdir holds. Use a new workdir, or '
      'delete the file to adopt the current config.'
    ) from e
  return record


# Files that tell the kind of a workdir whose record has no kind, or that has no record.
_KIND_MARKS = (('sweep.json', 'sweep'), ('search.json', 'search'), ('study.db', 'search'))


def kind_of(workdir: str) -> str | None:
  """The kind of run `workdir` holds (`MODE_KINDS` values), or None for a new workdir."""
  record = read(workdir)
  if record is not None:
    return record.get('kind', 'train')  # a record without a kind (format 1): train or evaluate
  for name, kind in _KIND_MARKS:
    if os.path.exists(os.path.join(workdir, name)):
      return kind
  summary = os.path.join(workdir, 'summary.json')
  if os.path.exists(summary):
    try:
      with open(summary, encoding='utf-8') as f:
        return 'baseline' if 'method' in json.load(f) else 'train'
    except (OSError, ValueError):
      return None
  if os.path.exists(os.path.join(workdir, 'config.json')):
    return 'train'  # a training that had not finished its first run
  return None


def check_kind(workdir: str, mode: str) -> None:
  """Refuses to run `mode` in a workdir made by a mode of another kind.

  Raises:
    InputError: naming the workdir's kind, the mode, and what to do.
  """
  wanted = MODE_KINDS.get(mode)
  if wanted is None or not os.path.isdir(workdir):
    return
  found = kind_of(workdir)
  if found is not None and found != wanted:
    raise InputError(
      f'{workdir} holds a {found} run ({RUN_FILE}); --mode={mode} runs only in a {wanted} '
      f'workdir: use another --workdir.'
    )
  if found is None and mode in ('evaluate', 'transfer'):
    raise InputError(f'{workdir} holds no trained run (no {RUN_FILE}): train first.')


_warned: set = set()


def _warn_once(workdir: str, what: str) -> None:
  if (workdir, what) not in _warned:
    _warned.add((workdir, what))
    logging.warning(
      '%s was recorded before memjax kept %s: it cannot be checked.', path_of(workdir), what
    )


def check(
  config: ml_collections.ConfigDict, data: MemorabilityData, workdir: str, kind: str = 'train'
) -> list:
  """Compares the run with the one `workdir` recorded (if any) and records it if new.

  Returns:
    The differences that `config.resume_changed` allowed (empty when the runs agree).

  Raises:
    InputError: the workdir holds another kind of run; an extractor differs from the recorded
      one; a `MEANING` field differs; other result fields or the data differ and
      `config.resume_changed` is False.
  """
  before = read(workdir)
  diffs, fixed = [], []
  if before is not None:
    if before.get('kind', 'train') != kind:
      check_kind(workdir, kind)
    fields = result_fields(config, kind)
    diffs = compare(before['fields'], fields)
    fixed = compare(before['fields'], fields, only_meaning=True)
  now = record_of(config, data, kind)
  if before is None:
    check_kind(workdir, kind)
    os.makedirs(workdir, exist_ok=True)
    results.write_json(path_of(workdir), now)
    return []
  if 'extractors' in before:
    data_identity.check_identities(
      before['extractors'], now['extractors'], f'the run recorded in {path_of(workdir)}', 'the data'
    )
  else:
    _warn_once(workdir, 'the extractors behind the features')
  if before['data'] != now['data']:
    diffs.append('the data (ids, scores, splits or feature values) changed')
  if fixed or (diffs and not config.resume_changed):
    shown = fixed or diffs
    more = f'; and {len(shown) - _SHOW} more' if len(shown) > _SHOW else ''
    hint = (
      'Use a new --workdir (these fields say what the trained parameters mean)'
      if fixed
      else 'Use a new --workdir, or --config.resume_changed=True to continue it anyway'
    )
    raise InputError(
      f'{workdir} holds another run (recorded in {RUN_FILE}): {"; ".join(shown[:_SHOW])}{more}. '
      f'{hint}.'
    )
  return diffs


def check_model(config: ml_collections.ConfigDict, workdir: str) -> dict | None:
  """What `predict` and `transfer` check before using a trained workdir: the config's `MEANING`
  fields against the record.

  Returns:
    The record (None for a workdir without one: only its checkpoints' fields are checked
    then), for `check_extractors`.

  Raises:
    InputError: a differing field, named with both values.
  """
  record = read(workdir)
  if record is None:
    _warn_once(workdir, 'a run record')
    return None
  diffs = compare(record['fields'], result_fields(config), only_meaning=True)
  if diffs:
    more = f'; and {len(diffs) - _SHOW} more' if len(diffs) > _SHOW else ''
    raise InputError(
      f'the config differs from the run {workdir} trained (recorded in {RUN_FILE}) in what its '
      f'parameters mean: {"; ".join(diffs[:_SHOW])}{more}. Leave these fields as recorded '
      '(drop --config to use the recorded config).'
    )
  return record


def check_extractors(record: dict | None, workdir: str, identities: dict | None, what: str):
  """The extractors behind the features at hand (`identities`, feature -> identity; `what` names
  them in the message, with `{name}` for the feature) against the ones `record` was trained on.

  Raises:
    InputError: a differing extractor (`data_identity.check_identities`).
  """
  if record is None:
    return
  if 'extractors' not in record:
    _warn_once(workdir, 'the extractors behind the features')
    return
  data_identity.check_identities(
    record['extractors'], identities, f'the model trained in {workdir} ({RUN_FILE})', what
  )
