"""User-facing errors: one line that names the fix, no traceback wall."""


class UserError(Exception):
  """A mistake in the configuration or the environment that the user can fix.

  The command line prints only the message (one line) and exits with status 2.
  """


class Diverged(UserError):
  """A step's loss or the state became NaN/inf: a result of the
  hyperparameters on this data (a study records it), not a broken setup."""
