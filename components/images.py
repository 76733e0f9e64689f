"""Every container image the service VMs run (and the local stack's catalog loader), pinned in
this one module (pure, no Pulumi import).

Images that are built for each other's versions form an :class:`ImageSet` and are only ever
used together: a set is taken whole from one upstream release and is never mixed with images
of another release (the startup scripts take a whole set, not single images). To move a set
to a newer release, read the upstream file at the new tag and replace the whole set, its
``release`` and ``commit`` together; ``tests/unit/test_images.py`` holds what was read.

API (stable)::

    ImageSet(name, images, upstream, release, commit, file)
        .roles                     the role names (``"neo4j"``, ``"search"``, ...)
        .references()              the image references, in role order
        .pinned(digests)           the same set with every reference ``repository:tag@sha256:...``
                                   (``digests``: role -> ``sha256:<64 hex>``, every role)
        .unpinned()                the same set without digests (what the tags say)
        .is_pinned                 every reference carries a digest
    AMUNDSEN: ImageSet             neo4j, elasticsearch, search, metadata, frontend, catalog
    METABASE: ImageSet             metabase, postgres
    IMAGE_SETS: dict[str, ImageSet]
    TOOL_ROLES                     roles no service container runs (``catalog``)
    service_references(images) -> list[str]   the references the containers run
    check_image_set(value, expected_roles, field) -> ImageSet   (ValueError naming the field)
    image_set_from_tags(value, expected, field) -> ImageSet
        a whole set from a mapping role -> ``repository:tag`` (a stack's
        ``flexyboots:services.<svc>.images``): exactly ``expected``'s roles, each role's
        repository unchanged (only tags move; a ``@sha256:`` digest may freeze one)
    split_reference(ref) -> (repository, tag, digest)
    check_digest(value, field) -> str

Digests are resolved at deploy time (``components.image_digests``, pulumi-docker's
``get_registry_image``): the tags here (or in a stack's config) say which release; what runs
is the content digest the registry returned for that tag, and a preview shows it change.

Where each set was read:

* ``AMUNDSEN``: ``docker-amundsen.yml`` of github.com/amundsen-io/amundsen at tag
  ``frontend-4.3.0`` (the same commit is tagged ``metadata-3.13.0``; 2024-03-06), the newest
  release touching that file. It pairs Elasticsearch 8.0.0 with ``amundsen-search:4.0.2``:
  search gained Elasticsearch 8 support after 2.11.1 (upstream commit cdcf738f, "feat:
  Elasticsearch 8 compatibility (#1722)", first released in search-3.1.0), so 2.11.1 (built
  for Elasticsearch 7) must not run against 8.0.0. Its ``catalog`` role is flexyboots' own,
  not upstream's: the Python the local stack's one-shot catalog loader runs databuilder in
  (``stacks/local.py``; 3.11, the Python ``requirements-databuilder.lock`` was resolved with and
  the Amundsen VM's Debian 12 runs the same job with). No container of the Amundsen compose
  file uses it: a VM resolves its digest with the rest of the set (its ``service_images``
  export lists it) and runs its catalog job in a virtualenv on the host instead.
* ``METABASE``: the Metabase release ``v0.50.36`` with Postgres 16 as its application
  database (Metabase's ``MB_DB_*`` Postgres settings).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Mapping

_REFERENCE = re.compile(r"^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]{1,128})?(@sha256:[0-9a-f]{64})?$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def split_reference(ref: str) -> tuple[str, str, str]:
    """``"repo/name:tag@sha256:..."`` -> ``("repo/name", "tag", "sha256:...")`` ("" where absent)."""
    name, _, digest = ref.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :], digest
    return name, "", digest


def check_digest(value: Any, field_name: str = "digest") -> str:
    if not isinstance(value, str) or not DIGEST.match(value):
        raise ValueError(f"{field_name}: a content digest 'sha256:<64 hex digits>' (got {value!r})")
    return value


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

    @property
    def is_pinned(self) -> bool:
        return all(split_reference(ref)[2] for ref in self.images.values())

    def unpinned(self) -> "ImageSet":
        """The same set, references without their digests (``repository:tag``)."""
        return replace(self, images={r: ref.partition("@")[0] for r, ref in self.images.items()})

    def pinned(self, digests: Mapping[str, str]) -> "ImageSet":
        """The same set with each reference ``repository:tag@<digest>``: ``digests`` gives a
        ``sha256:`` content digest for every role (a digest already in a reference is replaced)."""
        if set(digests) != set(self.roles):
            raise ValueError(
                f"images: digests for exactly the roles {', '.join(self.roles)} (got {', '.join(sorted(digests)) or 'none'})"
            )
        for role in self.roles:
            check_digest(digests[role], f"images[{role!r}] digest")
        return replace(self, images={r: f"{ref.partition('@')[0]}@{digests[r]}" for r, ref in self.images.items()})


AMUNDSEN = ImageSet(
    name="amundsen",
    images={
        "neo4j": "neo4j:3.5.26",
        "elasticsearch": "elasticsearch:8.0.0",
        "search": "amundsendev/amundsen-search:4.0.2",
        "metadata": "amundsendev/amundsen-metadata:3.11.0",
        "frontend": "amundsendev/amundsen-frontend:4.2.0",
        "catalog": "python:3.11-slim-bookworm",
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
#: roles of a set that no service container runs (one-shot tools: the local catalog loader)
TOOL_ROLES: tuple[str, ...] = ("catalog",)


def service_references(images: ImageSet) -> list[str]:
    """The references of ``images`` its service containers run (:data:`TOOL_ROLES` left out)."""
    return [ref for role, ref in images.images.items() if role not in TOOL_ROLES]


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


def image_set_from_tags(value: Any, expected: ImageSet, field_name: str = "images") -> ImageSet:
    """A whole set from ``{role: "repository:tag"}`` (a stack config's ``images``): exactly
    ``expected``'s roles, each role keeping ``expected``'s repository, so a config moves tags
    (a release) and never swaps in another image. A reference may carry a ``@sha256:`` digest
    to freeze it. The set keeps ``expected``'s name and upstream; its release is ``"config"``."""
    if not isinstance(value, Mapping):
        raise ValueError(
            f"{field_name}: a mapping of every role ({', '.join(expected.roles)}) to 'repository:tag' (got {value!r})"
        )
    if set(value) != set(expected.roles):
        missing = [r for r in expected.roles if r not in value]
        unknown = sorted(str(r) for r in value if r not in expected.roles)
        what = "; ".join(p for p in (
            f"missing {', '.join(missing)}" if missing else "", f"unknown {', '.join(unknown)}" if unknown else "") if p)
        raise ValueError(
            f"{field_name}: a whole image set with exactly the roles {', '.join(expected.roles)} ({what}); "
            "images built for each other are only moved together, from one upstream release"
        )
    images: dict[str, str] = {}
    for role in expected.roles:
        ref = value[role]
        key = f"{field_name}.{role}"
        if not isinstance(ref, str) or not _REFERENCE.match(ref):
            raise ValueError(f"{key}: an image reference 'repository:tag' (got {ref!r})")
        repo, tag, _ = split_reference(ref)
        want = split_reference(expected.images[role])[0]
        if repo != want:
            raise ValueError(f"{key}: an image of {want} (only the tag changes; got {ref!r})")
        if not tag:
            raise ValueError(f"{key}: a tag, e.g. {expected.images[role].partition('@')[0]!r} (got {ref!r})")
        if tag == "latest":
            raise ValueError(f"{key}: a release tag, not 'latest' (got {ref!r})")
        images[role] = ref
    return ImageSet(name=expected.name, images=images, upstream=expected.upstream, release="config")
