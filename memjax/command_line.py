"""main.py's flag parsing and its one error handler: a user's mistake is one line, not a traceback.

Every failure that reaches the top becomes one `memjax: error: ...` line on stderr and an exit
status: a `MemjaxError`'s own `exit_code` (2 bad input, 3 diverged, 75 stopped), 2 for the other
mistakes a user makes and can fix (a missing or broken `--config` file, an unknown flag or config
field, a bad flag value, a missing or unreadable file, a full disk), 130 for Ctrl-C, and 1 for a
bug in memjax. Tracebacks are printed only with `--verbose`; without it a bug's line ends with a
hint to re-run with it. In a multi-process run the failing process also stops the others
(`memjax.runtime.distributed.stop_all_processes`).
"""

import contextlib
import difflib
import logging as std_logging
import re
import sys
import traceback
from collections.abc import Iterator
from typing import NoReturn

from absl import flags, logging

from memjax.errors import MemjaxError, no_space_reason

USAGE_EXIT = 2  # a user's mistake outside MemjaxError (bad flags, config file, missing file)
BUG_EXIT = 1
INTERRUPT_EXIT = 130  # 128 + SIGINT, what shells report for Ctrl-C
VERBOSE_HINT = 'run with --verbose for the traceback'
# OSErrors about a path the user gave (a file that is not there, not readable, not a folder).
PATH_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def one_line(text: str) -> str:
  """`text` with its lines joined: the error line stays one line."""
  return ' '.join(line.strip() for line in str(text).splitlines() if line.strip())


# Orbax's notices of a read-only manager (every restore for evaluation or prediction makes one).
_EXPECTED_ORBAX = ('Given directory is read only', 'read_only=True, setting save_interval_steps=0')


def quiet_orbax(record) -> bool:
  """Keeps Orbax's per-checkpoint INFO chatter and its expected read-only notices out of the
  log; its other warnings still show."""
  if '/orbax/' not in record.pathname:
    return True
  message = record.getMessage()
  return record.levelno >= std_logging.WARNING and not any(m in message for m in _EXPECTED_ORBAX)


def classify(error: BaseException) -> tuple[int, str, bool]:
  """(exit status, one-line message, whether it is a bug) for an error that reached main."""
  if isinstance(error, MemjaxError):
    return error.exit_code, one_line(error), False
  if isinstance(error, KeyboardInterrupt):
    return INTERRUPT_EXIT, 'interrupted (Ctrl-C); re-run the same command to resume.', False
  if isinstance(error, OSError):
    reason = no_space_reason(error)
    names = [n for n in (error.filename, error.filename2) if n]
    where = f': {" -> ".join(map(str, names))}' if names else ''
    if reason:
      return USAGE_EXIT, f'{reason}{where}; free space and re-run.', False
    if isinstance(error, PATH_ERRORS):
      return USAGE_EXIT, f'{error.strerror or one_line(error)}{where}.', False
  detail = one_line(error) or 'no message'
  return BUG_EXIT, f'internal error, a bug in memjax: {type(error).__name__}: {detail}', True


def _stop_other_processes(message: str, code: int) -> None:
  """Makes the other processes of a multi-process run stop too (nothing in a single one)."""
  distributed = sys.modules.get('memjax.runtime.distributed')
  if distributed is not None:  # imported: jax.distributed may be running
    distributed.stop_all_processes(message, exit_code=code)


def exit_with(
  code: int, message: str, error: BaseException | None, verbose: bool, bug=False, log=True
) -> NoReturn:
  """Prints the traceback (with `verbose`) and the one error line, then exits with `code`;
  `log` also writes the line to the absl log (not before the flags are parsed)."""
  if verbose and error is not None:
    traceback.print_exception(error, file=sys.stderr)
  elif bug:
    message = f'{message} ({VERBOSE_HINT})'
  if log:
    logging.error('%s', message)
  sys.stderr.flush()
  print(f'memjax: error: {message}', file=sys.stderr, flush=True)
  # The other processes print 'stopping because process P failed: <this>'.
  _stop_other_processes(f'{type(error).__name__}: {one_line(error)}' if bug else message, code)
  sys.exit(code)


@contextlib.contextmanager
def reporting_errors(verbose: bool) -> Iterator[None]:
  """Turns any failure inside into one error line and its exit status (see the module doc)."""
  try:
    yield
  except SystemExit:
    raise
  except BaseException as e:  # noqa: BLE001 (the top-level handler; KeyboardInterrupt too)
    code, message, bug = classify(e)
    exit_with(code, message, e, verbose, bug)


def _flag_argument(argv: list[str], name: str) -> str | None:
  """The value of the last `--NAME=VALUE` or `--NAME VALUE` in `argv` (absl's pick), if any."""
  found = None
  for i, arg in enumerate(argv[1:], start=1):
    if arg.startswith(f'--{name}='):
      found = arg.split('=', 1)[1]
    elif arg == f'--{name}' and i + 1 < len(argv):
      found = argv[i + 1]
  return found


def _config_argument(argv: list[str]) -> str | None:
  return _flag_argument(argv, 'config')


def describe_parse_error(error: BaseException, argv: list[str]) -> str:
  """One line for a failure while parsing the flags or loading the `--config` file."""
  config = _config_argument(argv) or ''
  if isinstance(error, MemjaxError):
    return one_line(error)
  if isinstance(error, SyntaxError):
    return f'config file {error.filename or config} line {error.lineno}: syntax error: {error.msg}.'
  text = one_line(error.args[0] if error.args else error).strip('\'"')
  if isinstance(error, AttributeError) and "attribute 'get_config'" in str(error):
    return (
      f'--config={config}: the file has no get_config() function returning a ConfigDict '
      '(start from configs/default.py).'
    )
  if isinstance(error, (AttributeError, KeyError)):  # ml_collections: a --config.FIELD it lacks
    return unknown_field(str(error.args[0] if error.args else error), argv)
  if isinstance(error, flags.UnrecognizedFlagError):
    return unknown_flag(error.flagname)
  if isinstance(error, flags.Error):
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if 'Error whilst parsing config file' in str(error):  # get_config() raised
      return f'--config={config}: get_config() failed: {lines[-1]} ({VERBOSE_HINT})'
    return ' '.join(lines)
  if isinstance(error, OSError):
    return f'--config={config}: cannot load the config file: {text.split(": ")[-1]}'
  return f'--config={config}: loading the config file failed: {type(error).__name__}: {text}'


def with_recorded_config(argv: list[str]) -> list[str]:
  """`argv`, given no `--config`, with the config the `--workdir` recorded as the config file."""
  if _config_argument(argv) is not None:
    return argv
  workdir = _flag_argument(argv, 'workdir')
  if not workdir:
    return argv
  from memjax import recorded_config

  return [argv[0], f'--config={recorded_config.__file__}:{workdir}', *argv[1:]]


def unknown_flag(name: str) -> str:
  """`unknown flag --nam; did you mean --name?`: the one unknown flag and its closest match."""
  close = difflib.get_close_matches(name, list(flags.FLAGS), n=1, cutoff=0.6)
  hint = f'; did you mean --{close[0]}?' if close else ' (--helpfull lists every flag).'
  return f'unknown flag --{name}{hint}'


def unknown_field(message: str, argv: list[str]) -> str:
  """`unknown config field --config.data.nam; did you mean --config.data.name?` from
  ml_collections' message (which quotes the field's last name and suggests one)."""
  key = re.search(r"'([^']+)'", message)
  key = key.group(1) if key else message.strip('\'"')
  overrides = [a[2:].split('=', 1)[0] for a in argv[1:] if a.startswith('--config.')]
  given = next((o for o in overrides if o.split('.')[-1] == key), None)
  given = given or (overrides[0] if len(overrides) == 1 else f'config.{key}')
  suggestion = re.search(r'Did you mean "([^"]+)"', message)
  if suggestion:
    close = given.rsplit('.', 1)[0] + '.' + suggestion.group(1)
    return f'unknown config field --{given}; did you mean --{close}?'
  return f'unknown config field --{given} (configs/default.py lists every field).'


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, where every failure is one `memjax: error:` line and exit 2.

  Without `--config`, the `--workdir`'s recorded config is the config (`with_recorded_config`).
  The `--config` file is checked first (ml_collections would report a missing one only later, as
  a traceback), and loaded while parsing.
  """
  from memjax import schema

  verbose = '--verbose' in argv or '--verbose=true' in [a.lower() for a in argv]
  try:
    argv = with_recorded_config(argv)
    config = _config_argument(argv)
    if config is not None:
      schema.check_readable_config_file(config)
    rest = flags.FLAGS(argv)
    if config is not None:
      getattr(flags.FLAGS.config, 'lock', None)  # a config that failed to load raises here
    return rest
  except SystemExit:
    raise
  except Exception as e:  # noqa: BLE001 (anything from loading a user's config file)
    exit_with(USAGE_EXIT, describe_parse_error(e, argv), e, verbose, log=False)


def usage_error(message: str) -> NoReturn:
  """A command-line mistake found after parsing: one line, exit 2."""
  exit_with(USAGE_EXIT, message, None, False)
