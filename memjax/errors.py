"""The one exception type memjax raises for bad input or configuration.

`main.py` turns it into a one-line message and a non-zero exit; anything else is a bug and keeps
its traceback.
"""


class InputError(ValueError):
  """Bad data, file or config value; the message names what and where, and what was expected."""
