"""The one exception type for user mistakes (printed as one line by the CLI, exit code 2).

It lives in its own module so that ``python -m swinlstm.cli.main`` (which runs main.py as
``__main__``) and the subcommands share the same class.
"""


class UserError(Exception):
    """A mistake in the user's input: printed as one line, exit code 2."""
