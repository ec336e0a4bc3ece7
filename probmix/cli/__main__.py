"""``python -m probmix.cli``: the command line."""

import sys

from probmix.cli.app import main

sys.exit(main())
