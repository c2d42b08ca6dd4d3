"""`python -m memjax MODE --config=... --workdir=...`: the same as the `memjax` command."""

from memjax import cli

if __name__ == '__main__':
  cli.console_main()
