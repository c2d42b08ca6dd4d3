"""memjax command line: python main.py --config=configs/k4.py --workdir=WORKDIR [--mode=MODE].

The flags, validation and dispatch live in memjax/cli.py, which the installed `memjax MODE ...`
command runs too; this file keeps `python main.py` working from a checkout.
"""

from absl import app

from memjax import command_line
from memjax.cli import FLAGS, main, run  # noqa: F401 (scripts and tests use them)

if __name__ == '__main__':
  app.run(main, flags_parser=command_line.parse_flags)
