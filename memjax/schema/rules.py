"""What one config value may be: the rule types of the field table (memjax/schema/fields.py),
and the one-line error of a value that breaks its rule.

Each rule knows its field's meaning (one line) and `expected`, the text an error shows, and
`accepts(value)`. Booleans are never numbers here (Python's `True == 1` would let them pass), ints
pass as floats, and lists pass as tuples (a config file may build either).
"""

import dataclasses
import math
import re
from collections.abc import Mapping

import ml_collections

from memjax.errors import InputError


def _number(value, integral: bool) -> bool:
  if isinstance(value, bool):
    return False
  return isinstance(value, int) if integral else isinstance(value, (int, float))


@dataclasses.dataclass(frozen=True)
class Rule:
  """Base of every rule: `meaning` is the field's one-line description."""

  meaning: str
  optional: bool = dataclasses.field(default=False, kw_only=True)  # None allowed (= default)

  @property
  def expected(self) -> str:
    text = self._expected()
    return f'{text}, or None' if self.optional else text

  def accepts(self, value) -> bool:
    if value is None:
      return self.optional
    return self._accepts(value)

  def _expected(self) -> str:
    raise NotImplementedError

  def _accepts(self, value) -> bool:
    raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Bool(Rule):
  def _expected(self) -> str:
    return 'True or False'

  def _accepts(self, value) -> bool:
    return isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class Number(Rule):
  """An int (`integral`) or a finite float within [low, high]; `open_low`/`open_high` exclude
  the bound itself."""

  low: float | None = None
  high: float | None = None
  integral: bool = False
  open_low: bool = False
  open_high: bool = False

  def _expected(self) -> str:
    what = 'an integer' if self.integral else 'a number'
    if self.low is not None and self.high is not None:
      left, right = '(' if self.open_low else '[', ')' if self.open_high else ']'
      return f'{what} in {left}{self.low}, {self.high}{right}'
    if self.low is not None:
      return f'{what} {">" if self.open_low else ">="} {self.low}'
    if self.high is not None:
      return f'{what} {"<" if self.open_high else "<="} {self.high}'
    return what

  def _accepts(self, value) -> bool:
    if not _number(value, self.integral) or not math.isfinite(value):
      return False
    if self.low is not None and (value <= self.low if self.open_low else value < self.low):
      return False
    return self.high is None or (value < self.high if self.open_high else value <= self.high)


def Int(meaning: str, low=None, high=None, **kw) -> Number:  # noqa: N802 (reads like a type)
  return Number(meaning, low, high, integral=True, **kw)


def Float(meaning: str, low=None, high=None, **kw) -> Number:  # noqa: N802
  return Number(meaning, low, high, **kw)


@dataclasses.dataclass(frozen=True)
class Str(Rule):
  """A non-empty string; with `choices` one of them, with `pattern` a full match of that regular
  expression."""

  choices: tuple | None = None
  pattern: str | None = None
  shape: str = ''  # how `pattern` reads to a user, e.g. 'host:port'

  def _expected(self) -> str:
    if self.choices is not None:
      return f'one of {self.choices}'
    return self.shape or 'a non-empty string'

  def _accepts(self, value) -> bool:
    if not isinstance(value, str) or not value.strip():
      return False
    if self.choices is not None and value not in self.choices:
      return False
    return self.pattern is None or re.fullmatch(self.pattern, value) is not None


@dataclasses.dataclass(frozen=True)
class Seq(Rule):
  """A tuple (or list) whose items all pass `item`; `min_len` items at least, no repeats when
  `distinct`."""

  item: Rule = None
  min_len: int = 0
  distinct: bool = False

  def _expected(self) -> str:
    size = f'{self.min_len}+ ' if self.min_len else ''
    unique = 'distinct ' if self.distinct else ''
    return f'a tuple of {size}{unique}items, each {self.item.expected}'

  def _accepts(self, value) -> bool:
    if not isinstance(value, (tuple, list)) or len(value) < self.min_len:
      return False
    if not all(self.item.accepts(v) for v in value):
      return False
    return not self.distinct or len(set(value)) == len(value)


@dataclasses.dataclass(frozen=True)
class Interval(Rule):
  """A `(low, high)` pair of `item` values with low <= high (a search range)."""

  item: Rule = None

  def _expected(self) -> str:
    return f'(low, high) with low <= high, each {self.item.expected}'

  def _accepts(self, value) -> bool:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
      return False
    return all(self.item.accepts(v) for v in value) and value[0] <= value[1]


@dataclasses.dataclass(frozen=True)
class Entries(Rule):
  """A ConfigDict whose keys are open (feature names, dataset names, row labels): every key
  matches `key_pattern`, and every value passes `value` (a Rule) or, when `fields` is given, is a
  ConfigDict with exactly those fields, each checked by its own Rule."""

  value: Rule | None = None
  fields: Mapping[str, Rule] | None = None
  key_pattern: str = r'[A-Za-z0-9_][A-Za-z0-9_.-]*'  # names that are also file names

  def _expected(self) -> str:
    if self.fields is not None:
      return f'a ConfigDict of name -> ConfigDict with fields {tuple(self.fields)}'
    return f'a ConfigDict of name -> value, each value {self.value.expected}'

  def _accepts(self, value) -> bool:
    return isinstance(value, (ml_collections.ConfigDict, dict))


@dataclasses.dataclass(frozen=True)
class Struct(Rule):
  """A ConfigDict (or dict) whose contents other rules check (e.g. overrides of config.data)."""

  def _expected(self) -> str:
    return 'a ConfigDict (or dict) of fields'

  def _accepts(self, value) -> bool:
    return isinstance(value, (ml_collections.ConfigDict, dict))


def _show(value) -> str:
  """`value` on one short line, for a message."""
  if isinstance(value, ml_collections.ConfigDict):
    value = value.to_dict()
  text = repr(value).replace('\n', ' ')
  return text if len(text) <= 120 else text[:117] + '...'


def fail(path: str, value, expected: str, meaning: str = '') -> None:
  """Raises the one-line InputError for field `config.<path>`."""
  about = f' ({meaning})' if meaning else ''
  raise InputError(f'config.{path}={_show(value)}: expected {expected}{about}.')


def check_value(path: str, value, rule: Rule) -> None:
  """Raises InputError when `value` breaks `rule`; checks every entry of an `Entries` rule."""
  if not rule.accepts(value):
    fail(path, value, rule.expected, rule.meaning)
  if not isinstance(rule, Entries):
    return
  for key, entry in value.items():
    where = f'{path}.{key}'
    if not isinstance(key, str) or not re.fullmatch(rule.key_pattern, key):
      fail(path, key, f'entry names matching {rule.key_pattern!r}', rule.meaning)
    if rule.fields is None:
      check_value(where, entry, rule.value)
      continue
    if not isinstance(entry, (ml_collections.ConfigDict, dict)):
      fail(where, entry, f'a ConfigDict with fields {tuple(rule.fields)}', rule.meaning)
    missing = [f for f in rule.fields if f not in entry]
    unknown = [f for f in entry if f not in rule.fields]
    if missing or unknown:
      fail(
        where,
        entry,
        f'exactly the fields {tuple(rule.fields)} (missing {missing}, unknown {unknown})',
        rule.meaning,
      )
    for name, field_rule in rule.fields.items():
      check_value(f'{where}.{name}', entry[name], field_rule)
