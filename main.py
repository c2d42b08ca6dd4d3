"""memjax command line: flags, validation and dispatch only.

python main.py --config=configs/k4.py --workdir=WORKDIR
  [--mode=train|evaluate|extract|predict|baseline|sweep|search|transfer|report] [--config.x=y]
  [--input=IMAGES --output=CSV] [--verbose]

Without `--config`, the config is the one WORKDIR recorded (memjax/recorded_config.py): a
trained workdir is evaluated, scored (`--mode=predict --input=DIR`), transferred or resumed with
`--workdir` alone.

The config is validated (memjax/config_schema.py) before the mode's modules are imported, so a
bad field costs no start-up time. Errors are one `memjax: error:` line and an exit status
(memjax/command_line.py); `--verbose` adds the traceback.
"""

import importlib

from absl import app, flags, logging
from ml_collections import config_flags

from memjax import command_line, config_schema

# mode -> (module, function(config, workdir)); imported only once the config is valid.
MODES = {
  'train': ('memjax.train', 'train_and_evaluate'),
  'evaluate': ('memjax.evaluate', 'evaluate'),
  'extract': ('memjax.features.extract', 'extract'),
  'predict': ('memjax.predict', 'predict'),
  'baseline': ('memjax.experiments.baselines', 'run'),
  'sweep': ('memjax.experiments.sweep', 'run'),
  'search': ('memjax.experiments.search', 'run'),
  'transfer': ('memjax.experiments.transfer', 'transfer'),
  'report': ('memjax.experiments.report', 'report'),
}

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Experiment config file.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and results.')
flags.DEFINE_enum('mode', 'train', list(MODES), 'What to run.')
flags.DEFINE_string('input', None, 'predict: the folder or CSV of images (config.predict.input).')
flags.DEFINE_string('output', None, 'predict: the CSV to write (config.predict.output).')
flags.DEFINE_bool('verbose', False, 'Print the traceback of an error, not only its one line.')
flags.mark_flags_as_required(['workdir'])


def run(config, workdir: str, mode: str) -> None:
  """Sets up JAX and runs `mode` holding the workdir's lock."""
  import jax
  import tensorflow as tf

  from memjax import run_record
  from memjax.runtime import compile_cache, distributed, host_memory, workdir_lock

  run_record.check_kind(workdir, mode)  # before the lock or anything else is written
  logging.get_absl_handler().python_handler.addFilter(command_line.quiet_orbax)
  host_memory.fix_mmap_threshold()  # batch buffers go back to the OS when freed
  tf.config.set_visible_devices([], 'GPU')  # tf.data only; JAX owns the accelerators.
  distributed.initialize_distributed(config.distributed)
  if config.compile_cache:  # only main.py turns the persistent cache on
    compile_cache.enable(workdir)
  logging.info('JAX %s, %d devices: %s', jax.__version__, jax.device_count(), jax.devices())
  module, function = MODES[mode]
  mode_fn = getattr(importlib.import_module(module), function)
  with workdir_lock.hold_for_mode(workdir, mode):  # one writer per workdir
    mode_fn(config, workdir)


def main(argv):
  with command_line.reporting_errors(FLAGS.verbose):
    if len(argv) > 1:
      command_line.usage_error(f'unexpected arguments {argv[1:]}; flags look like --name=value.')
    for flag, field in (('input', 'input'), ('output', 'output')):
      value = getattr(FLAGS, flag)
      if value is not None:
        if FLAGS.mode != 'predict':
          command_line.usage_error(f'--{flag} is for --mode=predict (config.predict.{field}).')
        FLAGS.config.predict[field] = value
    config_schema.validate(FLAGS.config, FLAGS.mode, FLAGS.workdir)
    run(FLAGS.config, FLAGS.workdir, FLAGS.mode)


if __name__ == '__main__':
  app.run(main, flags_parser=command_line.parse_flags)
