"""Pure helpers shared by every component (no Pulumi import: unit-tested on their own).

API (stable; part B and the stacks call these):

``labels(env, component, extra=None) -> dict[str, str]``
    The labels every labelled resource carries: ``env``, ``component``, ``managed-by: pulumi``,
    plus ``extra``. Keys and values are validated against GCP's label rules (keys: 1-63 chars,
    lower-case letters, digits, ``_`` and ``-``, starting with a letter; values: 0-63 of the
    same characters). ``extra`` may not override the three base labels.

``resource_name(env, *parts, max_len=None) -> str``
    ``<env>-<part>-<part>...``: the Pulumi logical name / physical name prefix of a resource.
    Parts are lower-cased; characters outside ``[a-z0-9-]`` become ``-``. With ``max_len`` the
    name is validated (not truncated: a silently shortened name could collide).

``ComponentArgsError(ValueError)``
    ``ComponentArgsError(component, field, expected, got=...)``; message
    ``"<Component>: <field>: <what was expected>"`` (+ ``" (got <value>)"``). Attributes
    ``component``, ``field``, ``expected``.

Validation helpers (each raises ``ComponentArgsError`` naming the component and field):
``require_env``, ``require_name``, ``require_non_empty``, ``require_positive_int``,
``require_one_of``, ``require_label_map``, ``require_gcp_region``, ``require_cidr``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Iterable, Mapping, Optional

from pipeline_sql.naming import ENV_PATTERN as ENV

__all__ = [
    "BASE_LABEL_KEYS",
    "ComponentArgsError",
    "labels",
    "resource_name",
    "require_env",
    "require_name",
    "require_non_empty",
    "require_positive_int",
    "require_one_of",
    "require_label_map",
    "require_gcp_region",
    "require_cidr",
]

#: The labels every labelled resource carries.
BASE_LABEL_KEYS = ("env", "component", "managed-by")
MANAGED_BY = "pulumi"

#: GCP identifier rules, shared by the components and the stack config.
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
_NAME = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")
_UNSAFE = re.compile(r"[^a-z0-9-]+")


class ComponentArgsError(ValueError):
    """A component's args are invalid. Message: ``"<Component>: <field>: <what was expected>"``."""

    def __init__(self, component: str, field: str, expected: str, got: Any = ...) -> None:
        self.component = component
        self.field = field
        self.expected = expected
        message = f"{component}: {field}: {expected}"
        if got is not ...:
            message += f" (got {got!r})"
        super().__init__(message)


def require_env(component: str, env: Any, field: str = "env") -> str:
    if not isinstance(env, str) or not ENV.match(env):
        raise ComponentArgsError(
            component, field, "1-16 lower-case letters and digits, starting with a letter", env
        )
    return env


def require_name(component: str, field: str, value: Any, max_len: int = 63) -> str:
    """A GCP-style resource name part: lower-case letters, digits and hyphens, starts with a letter."""
    if not isinstance(value, str) or not _NAME.match(value) or len(value) > max_len:
        raise ComponentArgsError(
            component,
            field,
            f"1-{max_len} lower-case letters, digits and hyphens, starting with a letter and not ending with a hyphen",
            value,
        )
    return value


def require_non_empty(component: str, field: str, value: Any) -> Any:
    if value is None or (hasattr(value, "__len__") and len(value) == 0):
        raise ComponentArgsError(component, field, "a non-empty value", value)
    return value


def require_positive_int(component: str, field: str, value: Any, allow_none: bool = False) -> Optional[int]:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ComponentArgsError(component, field, "a positive integer", value)
    return value


def require_one_of(component: str, field: str, value: Any, allowed: Iterable[Any]) -> Any:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ComponentArgsError(component, field, f"one of {', '.join(map(str, allowed))}", value)
    return value


def require_label_map(component: str, field: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ComponentArgsError(component, field, "a mapping of label key -> value", value)
    for k, v in value.items():
        if not isinstance(k, str) or not LABEL_KEY.match(k):
            raise ComponentArgsError(
                component, f"{field}[{k!r}]",
                "a label key of 1-63 lower-case letters, digits, '_' or '-', starting with a letter", k,
            )
        if not isinstance(v, str) or not LABEL_VALUE.match(v):
            raise ComponentArgsError(
                component, f"{field}[{k!r}]", "a label value of 0-63 lower-case letters, digits, '_' or '-'", v
            )
    return dict(value)


def require_gcp_region(component: str, field: str, value: Any) -> str:
    if not isinstance(value, str) or not REGION.match(value):
        raise ComponentArgsError(component, field, "a GCP region such as 'europe-west1'", value)
    return value


def require_cidr(component: str, field: str, value: Any) -> str:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except (TypeError, ValueError):
        raise ComponentArgsError(component, field, "an IPv4 CIDR range such as '10.10.0.0/20'", value) from None
    if net.version != 4:
        raise ComponentArgsError(component, field, "an IPv4 CIDR range", value)
    if net.prefixlen == 0:
        raise ComponentArgsError(component, field, "a CIDR range narrower than 0.0.0.0/0", value)
    return str(net)


def labels(env: str, component: str, extra: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """``{"env": env, "component": component, "managed-by": "pulumi", **extra}``, validated."""
    require_env("labels", env)
    if not isinstance(component, str) or not LABEL_VALUE.match(component) or not component:
        raise ComponentArgsError("labels", "component", "a label value of 1-63 lower-case letters, digits, '_' or '-'", component)
    extra = require_label_map("labels", "extra", extra)
    clash = sorted(set(extra) & set(BASE_LABEL_KEYS))
    if clash:
        raise ComponentArgsError("labels", "extra", f"no override of the base labels {', '.join(BASE_LABEL_KEYS)}", clash)
    return {"env": env, "component": component, "managed-by": MANAGED_BY, **extra}


def resource_name(env: str, *parts: str, max_len: Optional[int] = None) -> str:
    """``<env>-<part>-...`` with parts lower-cased and unsafe characters replaced by ``-``."""
    require_env("resource_name", env)
    if not parts:
        raise ComponentArgsError("resource_name", "parts", "at least one name part after the env")
    cleaned = []
    for i, part in enumerate(parts):
        if not isinstance(part, str) or not part.strip():
            raise ComponentArgsError("resource_name", f"parts[{i}]", "a non-empty string", part)
        piece = _UNSAFE.sub("-", part.strip().lower()).strip("-")
        if not piece:
            raise ComponentArgsError("resource_name", f"parts[{i}]", "at least one letter or digit", part)
        cleaned.append(piece)
    name = "-".join([env, *cleaned])
    name = re.sub(r"-{2,}", "-", name)
    if max_len is not None and len(name) > max_len:
        raise ComponentArgsError("resource_name", "parts", f"a name of at most {max_len} characters", name)
    return name
