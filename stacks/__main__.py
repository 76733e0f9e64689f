"""``python -m stacks plan --stack dev [--json | --inventory]`` and ``python -m stacks dags --stack prod --out DIR``: see :mod:`stacks.plan`."""

import sys

from stacks.plan import main

sys.exit(main())
