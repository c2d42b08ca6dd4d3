"""What a checkpoint records about the run that wrote it, and the check of a checkpoint against
the run at hand.

Every checkpoint's meta holds the run's `run_record.result_fields` and the feature widths its
parameters take (`run_meta`). Evaluation accepts a checkpoint whose parameters mean what the
config says (`run_record.MEANING` and the widths); resuming also compares every other result
field, and lets differences through only when asked (`config.resume_changed`).
"""

from memjax import run_record
from memjax.errors import InputError


def run_meta(config, feature_dims: dict) -> dict:
  """What a checkpoint records about the run that wrote it: its `run_record.result_fields` and
  the feature widths its parameters take."""
  return {'fields': run_record.result_fields(config), 'feature_dims': dict(feature_dims)}


# Checkpoints written before they kept `fields`: their keys, as dotted field prefixes.
_LEGACY_KEYS = ('features', 'num_classes', 'model', 'standardize', 'optimizer', 'batch_size')
_LEGACY_KEYS += ('seed',)


def _fields_of(meta: dict) -> tuple[dict, bool]:
  """(the checkpoint's result fields, whether it kept them all); older checkpoints kept a few
  groups under their own keys, which are compared as far as they go."""
  if 'fields' in meta:
    return meta['fields'], True
  legacy = {k: meta[k] for k in _LEGACY_KEYS if k in meta}
  recipe = meta.get('recipe') or {}
  legacy.update({k: recipe[k] for k in ('label_smoothing', 'ema_decay') if k in recipe})
  flat = run_record.used_fields(run_record.flatten(legacy), meta.get('features', ()))
  return flat, False


def check_meta(meta: dict, expected: dict, where: str, *, resume: bool = False, allow=False):
  """Compares a checkpoint's meta with `run_meta` of the config at hand.

  Args:
    meta: the checkpoint's meta.
    expected: `run_meta` of the config.
    where: the checkpoint, for the message.
    resume: compare every result field (resuming training); otherwise only what the parameters
      mean (`run_record.MEANING`) and the feature widths.
    allow: report the differences outside `MEANING` (returned) instead of raising.

  Returns:
    The differing fields' descriptions that `allow` let through (empty when all agree).

  Raises:
    InputError: a `MEANING` field or feature width differs, or (unless `allow`) another result
      field when resuming; every differing field is named.
  """
  stored, complete = _fields_of(meta)
  now = expected['fields'] if complete else {k: expected['fields'].get(k) for k in stored}
  fixed = run_record.compare(stored, now, only_meaning=True)
  if meta.get('feature_dims') != expected['feature_dims']:
    fixed.append(f'feature_dims: {meta.get("feature_dims")!r} -> {expected["feature_dims"]!r}')
  rest = [d for d in run_record.compare(stored, now) if d not in fixed] if resume else []
  if fixed or (rest and not allow):
    raise InputError(
      f'checkpoint {where} does not match the config (checkpoint -> config): '
      + '; '.join(fixed + rest)
    )
  return rest
