"""memjax command line: flags and dispatch only.

python main.py --config=configs/k4.py --workdir=WORKDIR
  [--mode=train|evaluate|extract|predict|baseline|sweep|search|transfer|report] [--config.x=y]
"""

import logging as std_logging
import sys

import jax
import tensorflow as tf
from absl import app, flags, logging
from ml_collections import config_flags

from memjax import evaluate, predict, train
from memjax.errors import InputError
from memjax.experiments import baselines, report, search, sweep, transfer
from memjax.features import extract
from memjax.runtime import distributed, host_memory, workdir_lock

MODES = {
  'train': train.train_and_evaluate,
  'evaluate': evaluate.evaluate,
  'extract': extract.extract,
  'predict': predict.predict,
  'baseline': baselines.run,
  'sweep': sweep.run,
  'search': search.run,
  'transfer': transfer.transfer,
  'report': report.report,
}

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Experiment config file.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and results.')
flags.DEFINE_enum('mode', 'train', list(MODES), 'What to run.')
flags.mark_flags_as_required(['config', 'workdir'])


def _quiet_orbax(record) -> bool:
  """Keeps Orbax's per-checkpoint INFO chatter out of the log; its warnings still show."""
  return record.levelno >= std_logging.WARNING or '/orbax/' not in record.pathname


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a `--config.FIELD` the config lacks as a one-line error (exit 2).

  ml_collections reports an unknown field as an AttributeError or KeyError from deep inside the
  parser; anything else keeps absl's own handling.
  """
  try:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError) as e:
    overrides = [a.split('=', 1)[0] for a in argv[1:] if a.startswith('--config.')]
    detail = str(e.args[0] if e.args else e).strip('\'"')
    print(
      f'memjax: error: unknown config field in {" ".join(overrides) or "the config"}: {detail}. '
      'configs/default.py lists every field.',
      file=sys.stderr,
    )
    sys.exit(2)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  logging.get_absl_handler().python_handler.addFilter(_quiet_orbax)
  host_memory.fix_mmap_threshold()  # batch buffers go back to the OS when freed
  tf.config.set_visible_devices([], 'GPU')  # tf.data only; JAX owns the accelerators.
  distributed.initialize_distributed(FLAGS.config.distributed)
  logging.info('JAX %s, %d devices: %s', jax.__version__, jax.device_count(), jax.devices())
  try:
    with workdir_lock.hold_for_mode(FLAGS.workdir, FLAGS.mode):  # one writer per workdir
      MODES[FLAGS.mode](FLAGS.config, FLAGS.workdir)
  except InputError as e:
    logging.error('%s', e)
    print(f'memjax: error: {e}', file=sys.stderr)
    distributed.stop_all_processes(str(e), exit_code=2)
    sys.exit(2)
  except Exception as e:
    if jax.process_count() > 1:  # other processes must not wait for this one in a collective
      logging.exception('process %d failed', jax.process_index())
      distributed.stop_all_processes(f'{type(e).__name__}: {e}', exit_code=1)
    raise


if __name__ == '__main__':
  app.run(main, flags_parser=_parse_flags)
