"""What the kubelet's pod-resources API answers, and which socket to ask: the part of the client
that needs no gRPC, so that a node without Kubernetes (``--pod-resources-socket`` off, or ``auto``
without the kubelet's directory) never loads it (tens of MB of the exporter's memory)."""
from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"


def socket_for(setting: str) -> str | None:
    """The socket a ``--pod-resources-socket`` setting designates, or None for no pod attribution.

    ``auto``: the kubelet's socket on a node that has the kubelet's pod-resources directory (a
    Kubernetes node, or a pod that mounts it), none elsewhere (a Slurm node), so a missing directory
    is not an error; once chosen, a missing socket is (the kubelet is down or restarting).
    ``""`` or ``off``: none. Anything else: that socket, required.
    """
    if setting == "auto":
        return DEFAULT_SOCKET if os.path.isdir(os.path.dirname(DEFAULT_SOCKET)) else None
    if setting in ("", "off"):
        return None
    return setting


@dataclass(frozen=True, order=True)
class DeviceAllocation:
    """One device-plugin device allocated to one container."""

    namespace: str
    pod: str
    container: str
    resource: str   # e.g. nvidia.com/gpu, nvidia.com/mig-1g.10gb
    device_id: str  # for NVIDIA: a GPU or MIG UUID (or index), "::<n>" appended under time-slicing


class PodResourcesError(Exception):
    """The kubelet could not be asked or did not answer; ``reason`` names the cause in a few words."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
