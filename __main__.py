"""flexyboots Pulumi program: read the stack's config, build the platform composition.

Everything lives in ``stacks/``: ``stacks/config.py`` validates the config of
``stacks/Pulumi.<stack>.yaml`` and ``stacks/platform.py`` composes the components. Offline,
``python -m stacks plan --stack dev`` runs this same program under Pulumi mocks.
"""

from stacks.platform import main

main()
