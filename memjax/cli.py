"""The memjax command: flags, validation and dispatch only (main.py and `memjax` both run it).

  memjax MODE --config=configs/k4.py --workdir=WORKDIR [--config.x=y] [--verbose]
  memjax predict --workdir=WORKDIR --input=IMAGES [--output=CSV]
  python main.py --config=configs/k4.py --workdir=WORKDIR [--mode=MODE] [--config.x=y]

Without `--config`, the config is the one WORKDIR recorded (memjax/recorded_config.py): a trained
workdir is evaluated, scored, transferred, reported or resumed with `--workdir` alone.

MODE is one of train (main.py's default), evaluate, extract, predict, baseline, sweep, search,
transfer, report. The config is validated (memjax/schema/) before the mode's modules are
imported, so a bad field costs no start-up time. Errors are one `memjax: error:` line and an exit
status (memjax/command_line.py); `--verbose` adds the traceback.
"""

import contextlib
import difflib
import importlib
import importlib.metadata
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from memjax import command_line, schema

if '--verbose' not in sys.argv:  # TensorFlow/XLA's C++ start-up notices; read when they start
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Experiment config file.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and results.')
flags.DEFINE_enum('mode', 'train', list(schema.MODES), 'What to run.')
flags.DEFINE_string('input', None, 'predict: the folder or CSV of images (config.predict.input).')
flags.DEFINE_string(
  'output', None, 'predict: the CSV; evaluate: the summary JSON; transfer: the results folder.'
)
# --input / --output -> the config group whose field they set, per mode.
FLAG_FIELDS = {
  'input': {'predict': 'predict'},
  'output': {'predict': 'predict', 'evaluate': 'eval', 'transfer': 'transfer'},
}
flags.DEFINE_bool('verbose', False, 'Print the traceback of an error, not only its one line.')
flags.mark_flags_as_required(['workdir'])


def hide_gpus_from_tensorflow() -> bool:
  """Keeps TensorFlow (tf.data only) off the GPUs, which JAX owns; True if it had to import it.

  requirements.txt installs the `tensorflow-cpu` wheel, which sees no GPU, so TensorFlow is not
  imported here (7-10 s) unless the full `tensorflow` wheel is installed.
  """
  try:
    importlib.metadata.distribution('tensorflow')
  except importlib.metadata.PackageNotFoundError:
    return False
  import tensorflow as tf

  tf.config.set_visible_devices([], 'GPU')
  return True


def quiet_console(verbose: bool) -> None:
  """The console a person reads: without `verbose`, no Orbax chatter, no TensorFlow/XLA start-up
  notices (oneDNN, CUDA probing on a CPU host), and on a terminal only the run's progress bar,
  its result lines and warnings (`runtime.progress`); `verbose` shows everything, debug lines
  (every epoch's scalars) included."""
  from memjax.runtime import progress

  handler = logging.get_absl_handler().python_handler
  if verbose:
    logging.set_verbosity(logging.DEBUG)
    return
  handler.addFilter(command_line.quiet_orbax)
  if progress.enabled():
    handler.addFilter(progress.console_only)
    handler.setFormatter(progress.ConsoleFormatter())


def run(config, workdir: str, mode: str, verbose: bool = False) -> None:
  """Sets up JAX and runs `mode` holding the workdir's lock."""
  import jax

  from memjax import run_record
  from memjax.runtime import compile_cache, distributed, host_memory, workdir_lock

  run_record.check_kind(workdir, mode)  # before the lock or anything else is written
  host_memory.fix_mmap_threshold()  # batch buffers go back to the OS when freed
  hide_gpus_from_tensorflow()
  distributed.initialize_distributed(config.distributed)
  quiet_console(verbose)  # after jax.distributed: it asks which process this is
  if config.compile_cache:  # only the command line turns the persistent cache on
    compile_cache.enable(workdir)
  logging.info('JAX %s, %d devices: %s', jax.__version__, jax.device_count(), jax.devices())
  runner = schema.MODES[mode]  # imported only now that the config is valid
  mode_fn = getattr(importlib.import_module(runner.module), runner.function)
  reads_only = (mode == 'evaluate' and config.eval.output) or (
    mode == 'transfer' and config.transfer.output
  )
  with workdir_lock.hold_for_mode(workdir, mode, reads_only=bool(reads_only)):  # one writer
    mode_fn(config, workdir)


def unset_none_overrides(config, argv: list[str]) -> None:
  """`--config.FIELD=None` sets a text field to None, as for every other type (ml_collections
  keeps the text 'None' for a text field); validation then judges None as for any value."""
  for arg in argv:
    if not (arg.startswith('--config.') and arg.endswith('=None')):
      continue
    *parents, name = arg.removeprefix('--config.').removesuffix('=None').split('.')
    node = config
    for part in parents:
      node = node[part]
    if node[name] == 'None':
      with contextlib.suppress(TypeError):  # a field that refuses None: validation names it
        node[name] = None


def main(argv):
  with command_line.reporting_errors(FLAGS.verbose):
    if len(argv) > 1:
      command_line.usage_error(f'unexpected arguments {argv[1:]}; flags look like --name=value.')
    unset_none_overrides(FLAGS.config, sys.argv)
    for flag in ('input', 'output'):
      value = getattr(FLAGS, flag)
      group = FLAG_FIELDS[flag].get(FLAGS.mode)
      if value is not None:
        if group is None:
          modes = ', '.join(f'--mode={m} (config.{g}.{flag})' for m, g in FLAG_FIELDS[flag].items())
          command_line.usage_error(f'--{flag} is for {modes}.')
        FLAGS.config[group][flag] = value
    schema.validate(FLAGS.config, FLAGS.mode)
    run(FLAGS.config, FLAGS.workdir, FLAGS.mode, FLAGS.verbose)


def mode_argv(argv: list[str]) -> list[str]:
  """`memjax MODE --flags...` as main.py's `--mode=MODE --flags...`; other argv unchanged.

  Raises:
    SystemExit: (exit 2, one `memjax: error:` line) for an unknown MODE, or a MODE word that
      contradicts a `--mode=` flag.
  """
  if len(argv) < 2 or argv[1].startswith('-'):
    return list(argv)
  mode, rest = argv[1], list(argv[2:])
  if mode not in schema.MODES:
    close = difflib.get_close_matches(mode, schema.MODES, n=1)
    hint = f'did you mean {close[0]!r}? ' if close else ''
    command_line.usage_error(f'unknown mode {mode!r}; {hint}modes: {", ".join(schema.MODES)}.')
  given = [a.split('=', 1)[1] for a in rest if a.startswith('--mode=')]
  if any(g != mode for g in given):
    command_line.usage_error(f'mode {mode!r} and --mode={given[-1]} disagree; give one of them.')
  return [argv[0], f'--mode={mode}', *rest]


def console_main() -> None:
  """Entry point of the installed `memjax` command and of `python -m memjax`."""
  argv = mode_argv(sys.argv)
  sys.modules['__main__'].__doc__ = __doc__  # what --help prints
  app.run(main, argv=argv, flags_parser=command_line.parse_flags)
