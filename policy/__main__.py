"""The flexyboots policy pack: ``pulumi preview --policy-pack policy``.

The Pulumi engine runs this file in ``policy/venv`` (``python -m pulumi.policy <engine> policy``,
which puts this folder on ``sys.path``); constructing the PolicyPack serves the policies over gRPC
until the engine stops it. ``python -m stacks policy`` starts it the same way, offline.
The rules live in ``flexyboots_policy/policies.py``.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from flexyboots_policy.policies import POLICIES

PolicyPack(
    name="flexyboots",
    policies=POLICIES,
    enforcement_level=EnforcementLevel.MANDATORY,
    description="flexyboots security rules",
)
