"""``Network``: a private VPC for the platform's VMs, reachable only through IAP.

API (stable)::

    Network(name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None)

``NetworkArgs``
    ``env: str``
    ``region: str``                         e.g. ``"europe-west1"``
    ``subnet_cidr: str = "10.10.0.0/20"``
    ``service_ports: Sequence[int] = ()``   TCP ports (besides 22) IAP may reach on tagged VMs,
                                            e.g. ``startup_scripts.SERVICE_PORTS.values()``
    ``project: str | None = None``
    ``flow_logs: bool = False``             VPC flow logs on the subnet
    ``depends_on: Sequence[pulumi.Resource] = ()``  e.g. the compute API Service

Creates: ``gcp.compute.Network`` (no auto subnets, regional routing), ``Subnetwork``
(private Google access on), ``Router`` + ``RouterNat`` (so VMs without external IPs pull
images), and ``Firewall`` rules admitting only IAP's TCP-forwarding range ``35.235.240.0/20``:
``<prefix>-allow-iap-ssh`` (tcp:22) and, when ``service_ports`` is set,
``<prefix>-allow-iap-services``, both targeted at the network tag ``iap_tag``. No rule ever
admits ``0.0.0.0/0``. (Compute networks, subnets, routers and firewalls take no labels.)

Outputs: ``network``, ``subnet``, ``router``, ``nat``, ``firewalls: dict[str, Firewall]``,
``network_id``, ``network_self_link``, ``subnet_id``, ``subnet_self_link``, ``region``,
``iap_tag: str`` (give it to ``ServiceVmArgs.network_tags``), ``iap_source_range: str``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi
import pulumi_gcp as gcp

from components.common import ComponentArgsError, require_cidr, require_env, require_gcp_region
from components.render import prefixed

TYPE = "flexyboots:network:Network"

#: Google's source range for IAP TCP forwarding.
IAP_TCP_RANGE = "35.235.240.0/20"


@dataclass
class NetworkArgs:
    env: str
    region: str
    subnet_cidr: str = "10.10.0.0/20"
    service_ports: Sequence[int] = ()
    project: Optional[str] = None
    flow_logs: bool = False
    depends_on: Sequence[pulumi.Resource] = ()

    def validate(self) -> None:
        require_env("Network", self.env)
        require_gcp_region("Network", "region", self.region)
        require_cidr("Network", "subnet_cidr", self.subnet_cidr)
        if isinstance(self.service_ports, (str, int)):
            raise ComponentArgsError("Network", "service_ports", "a list of TCP ports", self.service_ports)
        for i, port in enumerate(self.service_ports):
            if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                raise ComponentArgsError("Network", f"service_ports[{i}]", "a TCP port between 1 and 65535", port)
            if port == 22:
                raise ComponentArgsError("Network", f"service_ports[{i}]", "a port other than 22 (SSH has its own rule)", port)
        if len(set(self.service_ports)) != len(list(self.service_ports)):
            raise ComponentArgsError("Network", "service_ports", "each port listed once", list(self.service_ports))


class Network(pulumi.ComponentResource):
    def __init__(self, name: str, args: NetworkArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        if not isinstance(args, NetworkArgs):
            raise ComponentArgsError("Network", "args", "a NetworkArgs", type(args).__name__)
        args.validate()
        prefix = prefixed(args.env, name)
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))

        self.region = args.region
        self.iap_tag = f"{prefix}-iap"
        self.iap_source_range = IAP_TCP_RANGE

        self.network = gcp.compute.Network(
            f"{prefix}-vpc",
            name=f"{prefix}-vpc",
            project=args.project,
            auto_create_subnetworks=False,
            routing_mode="REGIONAL",
            description=f"flexyboots {args.env}: private network, ingress through IAP only",
            opts=child,
        )
        subnet_kwargs = {}
        if args.flow_logs:
            subnet_kwargs["log_config"] = {
                "aggregation_interval": "INTERVAL_10_MIN",
                "flow_sampling": 0.5,
                "metadata": "INCLUDE_ALL_METADATA",
            }
        self.subnet = gcp.compute.Subnetwork(
            f"{prefix}-subnet",
            name=f"{prefix}-subnet",
            project=args.project,
            region=args.region,
            network=self.network.id,
            ip_cidr_range=args.subnet_cidr,
            private_ip_google_access=True,
            opts=child,
            **subnet_kwargs,
        )
        self.router = gcp.compute.Router(
            f"{prefix}-router",
            name=f"{prefix}-router",
            project=args.project,
            region=args.region,
            network=self.network.id,
            opts=child,
        )
        self.nat = gcp.compute.RouterNat(
            f"{prefix}-nat",
            name=f"{prefix}-nat",
            project=args.project,
            region=args.region,
            router=self.router.name,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="LIST_OF_SUBNETWORKS",
            subnetworks=[{"name": self.subnet.id, "source_ip_ranges_to_nats": ["ALL_IP_RANGES"]}],
            log_config={"enable": True, "filter": "ERRORS_ONLY"},
            opts=child,
        )

        self.firewalls = {
            "ssh": self._iap_rule(prefix, "allow-iap-ssh", ["22"], args, child, "SSH through IAP TCP forwarding"),
        }
        if args.service_ports:
            ports = [str(p) for p in sorted(args.service_ports)]
            self.firewalls["services"] = self._iap_rule(
                prefix, "allow-iap-services", ports, args, child, "service ports through IAP TCP forwarding"
            )

        self.network_id = self.network.id
        self.network_self_link = self.network.self_link
        self.subnet_id = self.subnet.id
        self.subnet_self_link = self.subnet.self_link
        self.register_outputs(
            {
                "network_id": self.network_id,
                "network_self_link": self.network_self_link,
                "subnet_id": self.subnet_id,
                "subnet_self_link": self.subnet_self_link,
                "region": self.region,
                "iap_tag": self.iap_tag,
                "iap_source_range": self.iap_source_range,
            }
        )

    def _iap_rule(self, prefix, suffix, ports, args, child, description) -> gcp.compute.Firewall:
        return gcp.compute.Firewall(
            f"{prefix}-{suffix}",
            name=f"{prefix}-{suffix}",
            project=args.project,
            network=self.network.id,
            direction="INGRESS",
            priority=1000,
            source_ranges=[IAP_TCP_RANGE],
            target_tags=[self.iap_tag],
            allows=[{"protocol": "tcp", "ports": ports}],
            log_config={"metadata": "INCLUDE_ALL_METADATA"},
            description=f"flexyboots {args.env}: {description}",
            opts=child,
        )
