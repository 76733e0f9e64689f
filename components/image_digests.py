"""Image tags resolved to content digests at deploy time, with pulumi-docker.

The tags say which release (``components.images`` or a stack's ``flexyboots:services.<svc>.
images``); what a VM or a local container runs is ``repository:tag@sha256:<digest>``, the
digest the registry returns for the tag when the program runs. A tag that moves shows up in
the next preview as a changed startup script (the VM is replaced, its data disk kept) or a
changed image, instead of silently at the next boot.

pulumi-docker's ``get_registry_image`` is an invoke (a data source): it asks the registry
(``HEAD /v2/<repository>/manifests/<tag>``, Docker Hub's token handshake included) and returns
the ``Docker-Content-Digest`` header, i.e. the digest of the manifest list for a multi-platform
image, so each machine still pulls its own platform's image. The registry provider is created
with ``disable_docker_daemon_check=True``: resolving digests needs no Docker daemon on the
machine that runs ``pulumi up`` (the provider otherwise pings the daemon when configured).

API (stable)::

    registry_provider(name, opts=None) -> docker.Provider
    resolve(images: ImageSet, *, provider, parent=None) -> pulumi.Output[ImageSet]
        the same set, every reference pinned (``ImageSet.pinned``); one invoke per image

Under mocks (``components.testing.Mocks``) the invoke answers a digest derived from the
reference, so plans are deterministic and a changed tag changes the digest.
"""

from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_docker as docker

from components.images import ImageSet

__all__ = ["registry_provider", "resolve"]


def registry_provider(name: str, opts: Optional[pulumi.ResourceOptions] = None) -> docker.Provider:
    """A docker provider for registry lookups only: it never needs a Docker daemon."""
    return docker.Provider(name, disable_docker_daemon_check=True, opts=opts)


def resolve(images: ImageSet, *, provider: docker.Provider, parent: Optional[pulumi.Resource] = None) -> pulumi.Output:
    """``images`` with every reference pinned to the digest its registry returns now."""
    opts = pulumi.InvokeOutputOptions(provider=provider, parent=parent)
    digests = {
        role: docker.get_registry_image_output(name=ref, opts=opts).sha256_digest for role, ref in images.images.items()
    }
    return pulumi.Output.all(**digests).apply(lambda found: images.pinned(found))
