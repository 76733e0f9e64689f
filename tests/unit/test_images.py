"""The service image sets: each one is exactly what its upstream release pins, and the startup
scripts only ever take whole sets."""

from __future__ import annotations

import pytest
import yaml

from components import images, startup_scripts as ss

#: docker-amundsen.yml of github.com/amundsen-io/amundsen at tag frontend-4.3.0 (the same
#: commit, 125b04ff9f696091e2e5ff696ab8ad201580385d, is tagged metadata-3.13.0; 2024-03-06):
#: service -> image, as read in that file.
AMUNDSEN_AT_FRONTEND_4_3_0 = {
    "neo4j": "neo4j:3.5.26",
    "elasticsearch": "elasticsearch:8.0.0",
    "amundsensearch": "amundsendev/amundsen-search:4.0.2",
    "amundsenmetadata": "amundsendev/amundsen-metadata:3.11.0",
    "amundsenfrontend": "amundsendev/amundsen-frontend:4.2.0",
}
#: the compose service each role runs as (the upstream file's service names)
SERVICE_OF_ROLE = {"neo4j": "neo4j", "elasticsearch": "elasticsearch", "search": "amundsensearch",
                   "metadata": "amundsenmetadata", "frontend": "amundsenfrontend"}


def test_amundsen_set_is_the_upstream_release():
    s = images.AMUNDSEN
    assert (s.upstream, s.release, s.commit, s.file) == (
        "github.com/amundsen-io/amundsen", "frontend-4.3.0", "125b04ff9f696091e2e5ff696ab8ad201580385d", "docker-amundsen.yml"
    )
    upstream = {role: ref for role, ref in s.images.items() if role != "catalog"}
    assert {SERVICE_OF_ROLE[role]: ref for role, ref in upstream.items()} == AMUNDSEN_AT_FRONTEND_4_3_0
    # flexyboots' own role: the local catalog loader's Python (the databuilder lock's 3.11)
    assert s.images["catalog"] == "python:3.11-slim-bookworm"
    assert images.TOOL_ROLES == ("catalog",)
    assert images.service_references(s) == list(AMUNDSEN_AT_FRONTEND_4_3_0.values())  # what the compose file runs


def test_the_rendered_compose_runs_exactly_that_set():
    services = yaml.safe_load(ss.compose_amundsen())["services"]
    assert {name: svc["image"] for name, svc in services.items()} == AMUNDSEN_AT_FRONTEND_4_3_0
    # Elasticsearch 8 with a search service built for it: upstream's Elasticsearch 8 support
    # (commit cdcf738f) is first released in search-3.1.0; 2.11.1 was built for Elasticsearch 7
    assert services["elasticsearch"]["image"] == "elasticsearch:8.0.0"
    major, minor = (int(x) for x in services["amundsensearch"]["image"].rsplit(":", 1)[1].split(".")[:2])
    assert (major, minor) >= (3, 1)
    compose = yaml.safe_load(ss.compose_metabase())["services"]
    assert {svc["image"] for svc in compose.values()} == set(images.METABASE.references())


def test_single_images_cannot_be_mixed_in():
    """A set is taken whole: a dict of single images (the way versions got mixed) is refused,
    and so is a set with other roles."""
    with pytest.raises(ValueError, match=r"startup_scripts: images: a whole components.images.ImageSet"):
        ss.compose_amundsen(images={"search": "amundsendev/amundsen-search:2.11.1"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"images: an image set with the roles neo4j, elasticsearch"):
        ss.compose_amundsen(images=images.METABASE)
    with pytest.raises(ValueError, match=r"images: an image set with the roles metabase, postgres"):
        ss.render_metabase(secret_id="s", project="acme-data-dev", images=images.AMUNDSEN)


def test_every_image_is_pinned_to_a_tag():
    for s in images.IMAGE_SETS.values():
        for ref in s.references():
            assert ":" in ref.rsplit("/", 1)[-1] and not ref.endswith(":latest"), ref
    with pytest.raises(ValueError, match=r"images\['x'\]: a pinned image reference"):
        images.ImageSet(name="bad", images={"x": "neo4j"}, upstream="u", release="r")
    # a digest (what a later pin by digest adds) is accepted
    images.ImageSet(name="ok", images={"x": "neo4j:3.5.26@sha256:" + "0" * 64}, upstream="u", release="r")


# -- digests and the stack config's tags ------------------------------------------------------

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def test_a_set_is_pinned_whole_by_digest():
    pinned = images.METABASE.pinned({"metabase": D1, "postgres": D2})
    assert pinned.images == {"metabase": f"metabase/metabase:v0.50.36@{D1}", "postgres": f"postgres:16@{D2}"}
    assert pinned.is_pinned and not images.METABASE.is_pinned
    assert pinned.unpinned() == images.METABASE
    assert (pinned.name, pinned.release, pinned.upstream) == (images.METABASE.name, "v0.50.36", images.METABASE.upstream)
    # re-pinning replaces the digest (a moved tag), never appends a second one
    assert pinned.pinned({"metabase": D2, "postgres": D2}).images["metabase"] == f"metabase/metabase:v0.50.36@{D2}"
    with pytest.raises(ValueError, match=r"digests for exactly the roles metabase, postgres \(got metabase\)"):
        images.METABASE.pinned({"metabase": D1})
    with pytest.raises(ValueError, match=r"images\['postgres'\] digest: a content digest 'sha256:<64 hex digits>'"):
        images.METABASE.pinned({"metabase": D1, "postgres": "sha256:abc"})


def test_split_reference():
    assert images.split_reference("amundsendev/amundsen-search:4.0.2") == ("amundsendev/amundsen-search", "4.0.2", "")
    assert images.split_reference(f"postgres:16@{D1}") == ("postgres", "16", D1)
    assert images.split_reference("localhost:5000/team/app") == ("localhost:5000/team/app", "", "")


def test_a_stack_config_moves_tags_of_a_whole_set_only():
    moved = images.image_set_from_tags({"metabase": "metabase/metabase:v0.51.1", "postgres": "postgres:16.4"}, images.METABASE)
    assert moved.images == {"metabase": "metabase/metabase:v0.51.1", "postgres": "postgres:16.4"}
    assert moved.release == "config" and moved.roles == images.METABASE.roles
    frozen = images.image_set_from_tags({"metabase": f"metabase/metabase:v0.50.36@{D1}", "postgres": "postgres:16"}, images.METABASE)
    assert frozen.images["metabase"].endswith(D1)


@pytest.mark.parametrize("value,message", [
    ({"metabase": "metabase/metabase:v0.51.1"}, r"^images: a whole image set with exactly the roles metabase, postgres \(missing postgres\)"),
    ({"metabase": "metabase/metabase:v0.51.1", "postgres": "postgres:16", "redis": "redis:7"}, r"\(unknown redis\)"),
    ({"metabase": "metabase/metabase:v0.51.1", "postgres": "mysql:8"}, r"^images\.postgres: an image of postgres \(only the tag changes"),
    ({"metabase": "metabase/metabase", "postgres": "postgres:16"}, r"^images\.metabase: a tag, e\.g\. 'metabase/metabase:v0\.50\.36'"),
    ({"metabase": "metabase/metabase:latest", "postgres": "postgres:16"}, r"^images\.metabase: a release tag, not 'latest'"),
    ({"metabase": "Metabase/Metabase:v1", "postgres": "postgres:16"}, r"^images\.metabase: an image reference"),
    ("metabase/metabase:v0.51.1", r"^images: a mapping of every role \(metabase, postgres\)"),
])
def test_bad_config_images_are_refused_naming_the_role(value, message):
    with pytest.raises(ValueError, match=message):
        images.image_set_from_tags(value, images.METABASE)
