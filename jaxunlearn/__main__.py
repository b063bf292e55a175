"""``python -m jaxunlearn``: the ``jaxunlearn`` command."""
import sys

from jaxunlearn.cli import main

sys.exit(main())
