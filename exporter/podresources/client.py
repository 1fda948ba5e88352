"""A bounded client for the kubelet's pod-resources API over its unix socket.

Every call has a deadline (``timeout``) and a cap on the answer's size (``max_message_bytes``, the
16 MiB dcgm-exporter also allows), so a hung or runaway kubelet costs at most that. Failures are
raised as ``PodResourcesError`` with a ``reason`` that stays the same while the cause does (socket
missing, permission denied, timeout...), so a caller can log a persisting failure once.
"""
from __future__ import annotations

import os
import stat

import grpc

from exporter.podresources import api_pb2, api_pb2_grpc
from exporter.podresources.allocations import DeviceAllocation, PodResourcesError

CALL_TIMEOUT_S = 2.0
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class PodResourcesClient:
    """``List`` and ``GetAllocatableResources`` of one kubelet; one channel, reused across calls."""

    def __init__(self, socket_path: str, *, timeout: float | None = None,
                 max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.socket_path = socket_path
        self.timeout = CALL_TIMEOUT_S if timeout is None else timeout
        self._channel = grpc.insecure_channel(f"unix://{os.path.abspath(socket_path)}", options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", 1024),  # the requests are empty messages
            ("grpc.enable_http_proxy", 0),           # a unix socket: never through a proxy
        ])
        self._stub = api_pb2_grpc.PodResourcesListerStub(self._channel)

    def list_devices(self) -> list[DeviceAllocation]:
        """Every device allocated to a container of a pod on this node."""
        response = self._call(self._stub.List, api_pb2.ListPodResourcesRequest(), "List")
        return [
            DeviceAllocation(pod.namespace, pod.name, container.name, devices.resource_name, device_id)
            for pod in response.pod_resources
            for container in pod.containers
            for devices in container.devices
            for device_id in devices.device_ids
        ]

    def allocatable_devices(self) -> list[tuple[str, str]] | None:
        """(resource, device id) of every device the kubelet can allocate; None from a kubelet
        without ``GetAllocatableResources`` (before Kubernetes 1.21, or the feature gate off)."""
        try:
            response = self._call(self._stub.GetAllocatableResources, api_pb2.AllocatableResourcesRequest(),
                                  "GetAllocatableResources")
        except PodResourcesError as exc:
            if exc.reason == "unimplemented":
                return None
            raise
        return [(devices.resource_name, device_id) for devices in response.devices for device_id in devices.device_ids]

    def close(self) -> None:
        self._channel.close()

    def _call(self, method, request, name: str):  # type: ignore[no-untyped-def]
        self._check_socket()
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise _error(exc, name, self.timeout) from None

    def _check_socket(self) -> None:
        # gRPC reports a missing or forbidden socket as a generic UNAVAILABLE after retrying for the
        # whole deadline; looking first gives the operator the actual cause at once.
        try:
            mode = os.stat(self.socket_path).st_mode
        except FileNotFoundError:
            raise PodResourcesError("socket missing", f"{self.socket_path} does not exist (is the kubelet's "
                                    "pod-resources directory mounted?)") from None
        except PermissionError:
            raise PodResourcesError("permission denied", f"cannot reach {self.socket_path}") from None
        if not stat.S_ISSOCK(mode):
            raise PodResourcesError("not a socket", self.socket_path)
        if not os.access(self.socket_path, os.R_OK | os.W_OK):
            raise PodResourcesError("permission denied", f"{self.socket_path} is not readable and writable by "
                                    f"uid {os.geteuid()}")


def _error(exc: grpc.RpcError, name: str, timeout: float) -> PodResourcesError:
    code = exc.code() if hasattr(exc, "code") else None
    details = (exc.details() if hasattr(exc, "details") else "") or ""
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return PodResourcesError("unimplemented", f"the kubelet has no {name}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return PodResourcesError("timeout", f"{name} gave no answer within {timeout:g} s")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return PodResourcesError("answer too large", f"{name}: {details[:200]}")
    if code == grpc.StatusCode.PERMISSION_DENIED or "Permission denied" in details:
        return PodResourcesError("permission denied", f"{name}: {details[:200]}")
    return PodResourcesError("unavailable", f"{name}: {code.name if code else 'error'}: {details[:200]}")
