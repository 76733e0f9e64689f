"""Lineage tests: ``olschema`` (the OpenLineage schema validator) is imported as a sibling."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
