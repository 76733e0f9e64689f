"""Stack compositions and configs: ``Pulumi.<stack>.yaml`` (through ``stackConfigDir``),
:mod:`stacks.config` (validation), :mod:`stacks.platform` (composition), :mod:`stacks.plan`
(offline plan under mocks: ``python -m stacks plan --stack dev``)."""
