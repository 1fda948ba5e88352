"""The kubelet's pod-resources API (v1): which container of which pod holds which device.

Owns: the interface definition (``api.proto``, a wire-compatible subset of the kubelet's; its
source and how to regenerate ``api_pb2.py``/``api_pb2_grpc.py`` are in README.md), the bounded
client over the kubelet's unix socket (``client``; what it answers and which socket to ask, the
part that needs no gRPC, in ``allocations``) and the poller that keeps its latest answer off
the collection loop (``poller``).
Must not touch: NVML or metric families; the jobs collector (``exporter/collectors/jobs.py``)
matches these allocations to the node's GPUs and turns them into series.
"""
