"""Stack config parsing: defaults, Pulumi string forms, and refusals that name the key."""

from __future__ import annotations

import json
import textwrap

import pytest

from stacks.config import (
    StackConfigError,
    available_stacks,
    parse_stack_config,
    read_stack_file,
)

BASE = {"gcp:project": "acme-data-dev"}


def parse(extra: dict | None = None, stack: str = "dev"):
    return parse_stack_config({**BASE, **(extra or {})}, stack)


def test_defaults_are_cheap_and_safe():
    cfg = parse()
    assert cfg.env == "dev" and cfg.region == "europe-west1" and cfg.location == "EU"
    assert cfg.protect is False
    assert cfg.composer.enabled is False
    assert cfg.pipelines.mode == "scheduled" and cfg.pipelines.tables_dir == "config/tables"
    assert cfg.pipelines.layer_offset_minutes == 10 and cfg.pipelines.start_time == "2025-01-01T02:07:00Z"  # off the hour
    assert cfg.alerts.email is None
    assert all(not cfg.service(s).enabled for s in ("airbyte", "metabase", "amundsen"))
    assert cfg.datalake.s3_enabled is False
    assert cfg.service("metabase").bigquery_key is False  # a key exists only when a stack asks


def test_metabase_bigquery_key_is_a_metabase_switch():
    assert parse({"flexyboots:services": {"metabase": {"enabled": True, "bigquery_key": "true"}}}).service("metabase").bigquery_key is True
    with pytest.raises(StackConfigError, match=r"flexyboots:services.airbyte.bigquery_key: unknown key"):
        parse({"flexyboots:services": {"airbyte": {"bigquery_key": True}}})
    with pytest.raises(StackConfigError, match=r"flexyboots:services.metabase.bigquery_key: expected true or false"):
        parse({"flexyboots:services": {"metabase": {"bigquery_key": "yes"}}})


def test_env_defaults_to_the_stack_name():
    assert parse(stack="qa1").env == "qa1"
    assert parse({"flexyboots:env": "staging"}, stack="whatever").env == "staging"


def test_pulumi_string_forms_are_accepted():
    """What a real `pulumi up` hands the program: scalars as strings, objects as JSON."""
    cfg = parse(
        {
            "flexyboots:protect": "true",
            "flexyboots:composer": json.dumps({"enabled": True}),
            "flexyboots:pipelines": json.dumps({"mode": "orchestrated", "layer_offset_minutes": "30"}),
        }
    )
    assert cfg.protect is True and cfg.composer.enabled is True
    assert cfg.pipelines.mode == "orchestrated" and cfg.pipelines.layer_offset_minutes == 30


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"flexyboots:composer": {"enabled": "yes"}}, "flexyboots:composer.enabled: expected true or false, got 'yes'"),
        ({"flexyboots:protect": 1}, "flexyboots:protect: expected true or false, got 1"),
        ({"flexyboots:compser": {"enabled": True}}, "flexyboots:compser: unknown key"),
        ({"flexyboots:composer": {"enabeld": True}}, "flexyboots:composer.enabeld: unknown key"),
        ({"flexyboots:pipelines": {"mode": "cron"}}, "flexyboots:pipelines.mode: expected one of scheduled, orchestrated, got 'cron'"),
        ({"flexyboots:pipelines": {"layer_offset_minutes": 0}}, "flexyboots:pipelines.layer_offset_minutes: expected a whole number from 1 to 720"),
        ({"flexyboots:pipelines": {"start_time": "tomorrow"}}, "flexyboots:pipelines.start_time: expected a UTC time"),
        ({"flexyboots:network": {"cidr": "0.0.0.0/0"}}, "flexyboots:network.cidr: expected a private IPv4 range"),
        ({"flexyboots:env": "Prod"}, "flexyboots:env: expected 1-16 lower-case letters"),
        ({"gcp:region": "Europe"}, "gcp:region: expected a GCP region"),
        ({"flexyboots:services": {"airbyte": {"machine_type": "big one"}}}, "flexyboots:services.airbyte.machine_type: expected a machine type"),
        ({"flexyboots:services": {"superset": {}}}, "flexyboots:services.superset: unknown key"),
        ({"flexyboots:labels": {"env": "x"}}, "flexyboots:labels.env: expected a label key"),
        ({"flexyboots:composer": {"image_version": "composer-1-airflow-1.10"}}, "Composer 1 is not supported"),
        (
            {"flexyboots:composer": {"image_version": "composer-3-airflow-2.10.5", "environment_size": "ENVIRONMENT_SIZE_SMALL"}},
            "flexyboots:composer.environment_size: is a Composer 2 setting",
        ),
        ({"flexyboots:composer": {"workloads": {"worker": {"cpu": "lots"}}}}, "flexyboots:composer.workloads.worker.cpu: expected a number"),
    ],
)
def test_bad_values_name_the_key(extra, message):
    with pytest.raises(StackConfigError) as e:
        parse(extra)
    assert message in str(e.value)


def test_missing_project_says_how_to_set_it():
    with pytest.raises(StackConfigError, match="gcp:project: missing; set it with `pulumi config set gcp:project"):
        parse_stack_config({}, "dev")


@pytest.mark.parametrize(
    "extra, key",
    [
        ({"flexyboots:pipelines": {"mode": "orchestrated"}}, "flexyboots:pipelines.mode"),
        ({"flexyboots:warehouse": {"enabled": False}}, "flexyboots:pipelines.enabled"),
        ({"flexyboots:network": {"enabled": False}, "flexyboots:services": {"metabase": {"enabled": True}}}, "flexyboots:services.metabase.enabled"),
        ({"flexyboots:network": {"enabled": False}, "flexyboots:composer": {"enabled": True}}, "flexyboots:composer.enabled"),
    ],
)
def test_impossible_combinations_are_refused(extra, key):
    with pytest.raises(StackConfigError) as e:
        parse(extra)
    assert e.value.key == key


def test_composer_2_may_use_environment_size_and_workloads_parse():
    cfg = parse(
        {
            "flexyboots:composer": {
                "enabled": True,
                "image_version": "composer-2.9.7-airflow-2.9.3",
                "environment_size": "ENVIRONMENT_SIZE_SMALL",
                "workloads": {"worker": {"cpu": 1, "memory_gb": 4, "min_count": 1, "max_count": 3}},
            }
        }
    )
    assert cfg.composer.major == 2 and cfg.composer.environment_size == "ENVIRONMENT_SIZE_SMALL"
    # the DAG tasks are deferrable: a triggerer is added when the stack sets none
    assert cfg.composer.workloads == {
        "worker": {"cpu": 1, "max_count": 3, "memory_gb": 4, "min_count": 1},
        "triggerer": {"cpu": 0.5, "count": 1, "memory_gb": 1},
    }


def test_alerts_email_and_removed_or_useless_composer_settings():
    assert parse({"flexyboots:alerts": {"email": "ops@example.com"}}).alerts.email == "ops@example.com"
    with pytest.raises(StackConfigError, match=r"flexyboots:alerts.email: expected an e-mail address"):
        parse({"flexyboots:alerts": {"email": "ops"}})
    with pytest.raises(StackConfigError, match=r"flexyboots:composer.dag_schedule: is no longer used: each table has its own DAG"):
        parse({"flexyboots:composer": {"enabled": True, "dag_schedule": "@daily"}})
    with pytest.raises(StackConfigError, match=r"flexyboots:composer.workloads.triggerer.count: 0, but the DAG tasks are deferrable"):
        parse({"flexyboots:composer": {"enabled": True, "workloads": {"triggerer": {"count": 0, "cpu": 1, "memory_gb": 1}}}})


def test_stack_file_yes_stays_a_string_like_in_pulumi(tmp_path):
    (tmp_path / "Pulumi.qa.yaml").write_text(
        textwrap.dedent(
            """\
            config:
              gcp:project: acme-data-qa
              flexyboots:composer:
                enabled: yes
              flexyboots:secret-thing:
                secure: AAABADEADBEEF
            """
        )
    )
    raw, secret_keys = read_stack_file("qa", str(tmp_path))
    assert raw["flexyboots:composer"] == {"enabled": "yes"}
    assert raw["flexyboots:secret-thing"] == "[secure]" and secret_keys == ["flexyboots:secret-thing"]
    with pytest.raises(StackConfigError, match="expected true or false, got 'yes'"):
        parse_stack_config({k: v for k, v in raw.items() if k != "flexyboots:secret-thing"}, "qa")


def test_unknown_stack_lists_the_known_ones(tmp_path):
    (tmp_path / "Pulumi.dev.yaml").write_text("config: {}\n")
    assert available_stacks(str(tmp_path)) == ["dev"]
    with pytest.raises(StackConfigError, match="unknown stack 'nope'.*expected one of: dev"):
        read_stack_file("nope", str(tmp_path))


# -- service images (tags in config; digests resolved at deploy time) --------------------------

def test_service_images_default_to_components_images_and_move_as_whole_sets():
    from components import images

    cfg = parse({"flexyboots:services": {"metabase": {"enabled": True}}})
    assert cfg.service("metabase").images == images.METABASE and cfg.service("amundsen").images == images.AMUNDSEN
    assert cfg.service("airbyte").images is None  # abctl pulls Airbyte's own images
    moved = {"metabase": "metabase/metabase:v0.51.1", "postgres": "postgres:16.4"}
    cfg = parse({"flexyboots:services": json.dumps({"metabase": {"enabled": True, "images": moved}})})
    assert cfg.service("metabase").images.images == moved


@pytest.mark.parametrize("images,message", [
    ({"metabase": "metabase/metabase:v0.51.1"},
     r"^flexyboots:services.metabase.images: expected a whole image set with exactly the roles metabase, postgres \(missing postgres\)"),
    ({"metabase": "metabase/metabase:v0.51.1", "postgres": "postgres:16", "redis": "redis:7"},
     r"^flexyboots:services.metabase.images.redis: unknown key; expected one of metabase, postgres"),
    ({"metabase": "metabase/metabase:v0.51.1", "postgres": "mysql:8"},
     r"^flexyboots:services.metabase.images.postgres: expected an image of postgres"),
    ({"metabase": "metabase/metabase:latest", "postgres": "postgres:16"},
     r"^flexyboots:services.metabase.images.metabase: expected a release tag, not 'latest'"),
])
def test_service_images_are_refused_naming_the_key(images, message):
    with pytest.raises(StackConfigError, match=message):
        parse({"flexyboots:services": {"metabase": {"images": images}}})


def test_airbyte_images_cannot_be_set():
    with pytest.raises(StackConfigError, match=r"^flexyboots:services.airbyte.images: abctl pulls Airbyte's images itself"):
        parse({"flexyboots:services": {"airbyte": {"images": {"server": "airbyte/server:1.0.0"}}}})


# -- the local composition ----------------------------------------------------------------------

def test_the_local_composition_needs_no_gcp_project():
    from stacks.config import LocalConfig, parse_config

    cfg = parse_config({"flexyboots:composition": "local", "flexyboots:services": {"metabase": {"enabled": True}}}, "local")
    assert isinstance(cfg, LocalConfig) and cfg.project == "" and cfg.env == "local"
    assert cfg.service("metabase").enabled and cfg.service("metabase").port == 3000
    assert not cfg.service("amundsen").enabled and cfg.service("amundsen").port == 5000
    # the platform keys Pulumi's project file may hand every stack are not read (VM settings
    # under services included: the project file's defaults carry machine types)
    cfg = parse_config({"flexyboots:composition": "local", "flexyboots:composer": {"enabled": True}, "gcp:region": "x",
                        "flexyboots:services": {"metabase": {"enabled": True, "machine_type": "e2-medium"}}}, "dev2")
    assert cfg.env == "dev2" and cfg.service("metabase").enabled
    # and the platform still needs its project
    with pytest.raises(StackConfigError, match=r"^gcp:project: missing"):
        parse_config({}, "dev")


@pytest.mark.parametrize("services,message", [
    ({"airbyte": {"enabled": True}}, r"^flexyboots:services.airbyte.enabled: the local composition runs Metabase and Amundsen only"),
    ({"amundsen": {"port": 80}}, r"^flexyboots:services.amundsen.port: expected a whole number from 1024 to 65535"),
    ({"metabase": {"enabled": True, "port": 5000}, "amundsen": {"enabled": True}}, r"each service needs its own host port"),
    ({"amundsen": {"images": {"neo4j": "neo4j:4.4"}}}, r"^flexyboots:services.amundsen.images: expected a whole image set"),
])
def test_local_config_refusals_name_the_key(services, message):
    from stacks.config import parse_config

    with pytest.raises(StackConfigError, match=message):
        parse_config({"flexyboots:composition": "local", "flexyboots:services": services}, "local")


def test_the_local_composition_reads_the_specs_folder_and_only_that_of_pipelines():
    from stacks.config import parse_config

    local = {"flexyboots:composition": "local"}
    assert parse_config(local, "local").tables_dir == "config/tables"
    cfg = parse_config({**local, "flexyboots:pipelines": {"tables_dir": "tests/stacks/tables", "mode": "orchestrated"}}, "local")
    assert cfg.tables_dir == "tests/stacks/tables"
    cfg = parse_config({**local, "flexyboots:pipelines": '{"tables_dir": "/abs/specs"}'}, "local")  # as Pulumi hands it
    assert cfg.tables_dir == "/abs/specs"
    with pytest.raises(StackConfigError, match=r"^flexyboots:pipelines.tables_dir: expected a folder path such as 'config/tables'"):
        parse_config({**local, "flexyboots:pipelines": {"tables_dir": "specs; rm -rf /"}}, "local")
    with pytest.raises(StackConfigError, match=r"^flexyboots:pipelines.tabledir: unknown key"):
        parse_config({**local, "flexyboots:pipelines": {"tabledir": "x"}}, "local")


def test_composition_is_validated():
    from stacks.config import parse_config

    with pytest.raises(StackConfigError, match=r"^flexyboots:composition: expected one of platform, local, got 'laptop'"):
        parse_config({**BASE, "flexyboots:composition": "laptop"}, "dev")
    with pytest.raises(StackConfigError, match=r"^flexyboots:composition: local: read it with parse_config"):
        parse_stack_config({"flexyboots:composition": "local"}, "local")


def test_the_local_stack_file_holds_only_what_the_local_composition_reads():
    from stacks.config import LocalConfig, parse_config

    raw, secret_keys = read_stack_file("local")
    assert secret_keys == [] and not [k for k in raw if k.startswith("gcp:")]
    assert set(raw) == {"flexyboots:composition", "flexyboots:env", "flexyboots:services", "flexyboots:pipelines"}
    cfg = parse_config(raw, "local")
    assert isinstance(cfg, LocalConfig) and cfg.tables_dir == "config/tables"
    assert [n for n, s in cfg.services.items() if s.enabled] == ["metabase", "amundsen"]
