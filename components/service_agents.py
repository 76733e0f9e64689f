"""Google-managed service agents the platform grants roles to: created by the program first.

A service agent (``service-<project number>@gcp-sa-<service>.iam.gserviceaccount.com`` and the
like) is a Google-owned account that a Google service acts as. Some exist only after the
service's first use: the BigQuery Data Transfer agent appears on the first Data Transfer API
call, so on a new project a grant to it fails with 400 "Service account ... does not exist".
So every agent the program grants to is *created* by the program with
``gcp.projects.ServiceIdentity`` (the Service Usage API's ``generateServiceIdentity``, a no-op
when the agent exists; never deleted), and every grant takes its member from that resource.
That gives each grant a dependency on the identity, and the identity one on its API:

    API (gcp.projects.Service) -> ServiceIdentity -> grants -> the resources that need them

Google's IAM documentation ("Create and grant roles to service agents") says an agent created
on request does not get the roles Google would grant automatically; the program grants the
agent its service agent role on the project (as cloud-foundation-fabric's project module does
after its ``google_project_service_identity``). That grant is kept when the stack is destroyed
(``retain_on_delete``): other users of the service in the project rely on it.

Pure data (:data:`SERVICE_AGENTS`) plus one helper for components (:func:`service_agent`).
Agents read in cloud-foundation-fabric's ``modules/project/service-agents.yaml`` (the list its
maintainers build from Google's service agent reference); both are primary agents of their API,
which fabric creates with ``google_project_service_identity``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

__all__ = ["AGENT_EMAIL", "ServiceAgent", "SERVICE_AGENTS", "AgentResources", "service_agent", "agent_email"]


@dataclass(frozen=True)
class ServiceAgent:
    api: str
    #: the agent's email, ``{number}`` = the project number
    email: str
    #: the role Google grants the agent when it creates it itself
    role: str
    display: str


SERVICE_AGENTS: dict[str, ServiceAgent] = {
    a.api: a
    for a in (
        ServiceAgent(
            api="bigquerydatatransfer.googleapis.com",
            email="service-{number}@gcp-sa-bigquerydatatransfer.iam.gserviceaccount.com",
            role="roles/bigquerydatatransfer.serviceAgent",
            display="BigQuery Data Transfer Service Agent",
        ),
        ServiceAgent(
            api="composer.googleapis.com",
            email="service-{number}@cloudcomposer-accounts.iam.gserviceaccount.com",
            role="roles/composer.serviceAgent",
            display="Cloud Composer Service Agent",
        ),
    )
}

#: Any Google-managed service agent's email (project-number based), for checks over a plan.
AGENT_EMAIL = re.compile(r"^service-\d+@(gcp-sa-[a-z0-9-]+|cloudcomposer-accounts|gs-project-accounts|compute-system)\.iam\.gserviceaccount\.com$")


def agent_email(api: str, project_number: str) -> str:
    """The email of ``api``'s service agent in the project with that number."""
    try:
        return SERVICE_AGENTS[api].email.format(number=project_number)
    except KeyError:
        raise KeyError(f"no known service agent for {api!r}; known: {', '.join(SERVICE_AGENTS)}") from None


@dataclass
class AgentResources:
    identity: object  # gcp.projects.ServiceIdentity
    role_grant: object  # gcp.projects.IAMMember (the agent's service agent role)
    member: object  # Output[str]: "serviceAccount:<agent email>", from the identity
    email: object  # Output[str]


def service_agent(
    name: str,
    api: str,
    project,
    parent,
    depends_on: Sequence = (),
    provider: Optional[object] = None,
) -> AgentResources:
    """Create ``api``'s service agent (after ``depends_on``, e.g. the API's Service) and grant it
    its service agent role; grants to the agent must use ``.member`` (or ``.email``)."""
    import pulumi
    import pulumi_gcp as gcp

    agent = SERVICE_AGENTS.get(api)
    if agent is None:
        raise KeyError(f"no known service agent for {api!r}; known: {', '.join(SERVICE_AGENTS)}")
    opts = pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on), provider=provider)
    identity = gcp.projects.ServiceIdentity(name, project=project, service=api, opts=opts)
    member = identity.member  # "serviceAccount:<email>", computed by the provider
    role_grant = gcp.projects.IAMMember(
        f"{name}-role",
        project=project,
        role=agent.role,
        member=member,
        opts=pulumi.ResourceOptions(parent=parent, provider=provider, retain_on_delete=True),
    )
    return AgentResources(identity=identity, role_grant=role_grant, member=member, email=identity.email)
