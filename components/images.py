"""Every container image the service VMs run, pinned in this one module (pure, no Pulumi import).

Images that are built for each other's versions form an :class:`ImageSet` and are only ever
used together: a set is taken whole from one upstream release and is never mixed with images
of another release (the startup scripts take a whole set, not single images). To move a set
to a newer release, read the upstream file at the new tag and replace the whole set, its
``release`` and ``commit`` together; ``tests/unit/test_images.py`` holds what was read.

API (stable)::

    ImageSet(name, images, upstream, release, commit, file)
        .roles                     the role names (``"neo4j"``, ``"search"``, ...)
        .references()              the image references, in role order
    AMUNDSEN: ImageSet             neo4j, elasticsearch, search, metadata, frontend
    METABASE: ImageSet             metabase, postgres
    IMAGE_SETS: dict[str, ImageSet]
    check_image_set(value, expected_roles, field) -> ImageSet   (ValueError naming the field)

Where each set was read:

* ``AMUNDSEN``: ``docker-amundsen.yml`` of github.com/amundsen-io/amundsen at tag
  ``frontend-4.3.0`` (the same commit is tagged ``metadata-3.13.0``; 2024-03-06), the newest
  release touching that file. It pairs Elasticsearch 8.0.0 with ``amundsen-search:4.0.2``:
  search gained Elasticsearch 8 support after 2.11.1 (upstream commit cdcf738f, "feat:
  Elasticsearch 8 compatibility (#1722)", first released in search-3.1.0), so 2.11.1 (built
  for Elasticsearch 7) must not run against 8.0.0.
* ``METABASE``: the Metabase release ``v0.50.36`` with Postgres 16 as its application
  database (Metabase's ``MB_DB_*`` Postgres settings).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

_REFERENCE = re.compile(r"^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]{1,128})?(@sha256:[0-9a-f]{64})?$")


@dataclass(frozen=True)
class ImageSet:
    """Images that belong together, read from one upstream release."""

    name: str
    #: role -> image reference (``repository:tag``; a later ``@sha256:`` digest is accepted)
    images: Mapping[str, str]
    #: where the set was read: repository (or project), release tag, commit, file
    upstream: str
    release: str
    commit: str = ""
    file: str = ""

    def __post_init__(self) -> None:
        if not self.images:
            raise ValueError(f"images: image set {self.name!r} is empty")
        for role, ref in self.images.items():
            if not isinstance(ref, str) or not _REFERENCE.match(ref) or (":" not in ref.split("/")[-1] and "@" not in ref):
                raise ValueError(f"images[{role!r}]: a pinned image reference 'repository:tag' (got {ref!r})")

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self.images)

    def references(self) -> list[str]:
        return [self.images[r] for r in self.roles]


AMUNDSEN = ImageSet(
    name="amundsen",
    images={
        "neo4j": "neo4j:3.5.26",
        "elasticsearch": "elasticsearch:8.0.0",
        "search": "amundsendev/amundsen-search:4.0.2",
        "metadata": "amundsendev/amundsen-metadata:3.11.0",
        "frontend": "amundsendev/amundsen-frontend:4.2.0",
    },
    upstream="github.com/amundsen-io/amundsen",
    release="frontend-4.3.0",
    commit="125b04ff9f696091e2e5ff696ab8ad201580385d",
    file="docker-amundsen.yml",
)

METABASE = ImageSet(
    name="metabase",
    images={"metabase": "metabase/metabase:v0.50.36", "postgres": "postgres:16"},
    upstream="github.com/metabase/metabase",
    release="v0.50.36",
)

IMAGE_SETS: dict[str, ImageSet] = {s.name: s for s in (AMUNDSEN, METABASE)}


def check_image_set(value: Any, expected: ImageSet, field_name: str = "images") -> ImageSet:
    """``value`` must be a whole :class:`ImageSet` with exactly ``expected``'s roles."""
    if not isinstance(value, ImageSet):
        raise ValueError(
            f"{field_name}: a whole components.images.ImageSet (e.g. images.{expected.name.upper()}); "
            f"single images are not accepted, so versions built for each other are never mixed (got {value!r})"
        )
    if set(value.roles) != set(expected.roles):
        raise ValueError(f"{field_name}: an image set with the roles {', '.join(expected.roles)} (got {', '.join(value.roles)})")
    return value
