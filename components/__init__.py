"""Reusable flexyboots ComponentResources (see docs/components.md).

Import the modules directly (``from components.network import Network, NetworkArgs``); this
package imports nothing on purpose, so the pure modules (``common``, ``render``,
``startup_scripts``) load without Pulumi.
"""
