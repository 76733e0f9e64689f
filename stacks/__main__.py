"""``python -m stacks plan --stack dev [--json | --inventory]``: see :mod:`stacks.plan`."""

import sys

from stacks.plan import main

sys.exit(main())
