"""``python -m gradlab`` is the ``gradlab`` command."""

import sys

from gradlab.cli import main

sys.exit(main())
