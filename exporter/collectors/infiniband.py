"""InfiniBand collector: port state, rate, traffic and every error counter, with node_exporter's names.

Reads ``class/infiniband/<device>/ports/<port>/`` from the sysfs tree: ``state``, ``phys_state``,
``rate``, ``counters/*`` (the IBA PortCounters every HCA has) and ``hw_counters/*`` (mlx5 driver
counters: RDMA retries, CQE errors, congestion). Names and labels are node_exporter 1.5's for the
port counters and later node_exporter's for hw_counters (1.5 does not read them); two transport
retry-exhaustion counters node_exporter lacks are added under the same prefix because they are
the ones that end a training job's NCCL connection.

Each counter is its own file: one that cannot be read or parsed is skipped and counted, the rest of
the port is still exposed. ``N/A (no PMA)`` means the HCA cannot count it: absent, not an error.
"""
from __future__ import annotations

from cwkernel.metrics import FamilySet, counter, gauge, metric_table
from exporter.collector import Collector, NoDataError, register_collector
from exporter.procfs import parse_ib_counter, parse_ib_rate, parse_ib_state, read_source

CLASS_DIR = "class/infiniband"
PORT_LABELS = ("device", "port")
_PORT_SRC = "/sys/class/infiniband/<device>/ports/<port>/"

# counters/<file> -> (metric name suffix, help, unit, multiplier)
# port_rcv_data / port_xmit_data count octets divided by 4 (IBA: per-lane 32-bit words).
PORT_COUNTERS = {
    "excessive_buffer_overrun_errors": ("excessive_buffer_overrun_errors_total", "Number of times that OverrunErrors consecutive flow control update periods occurred, each having at least one overrun error.", "errors", 1),
    "link_downed": ("link_downed_total", "Number of times the link failed to recover from an error state and went down", "events", 1),
    "link_error_recovery": ("link_error_recovery_total", "Number of times the link successfully recovered from an error state", "events", 1),
    "local_link_integrity_errors": ("local_link_integrity_errors_total", "Number of times that the count of local physical errors exceeded the threshold specified by LocalPhyErrors.", "errors", 1),
    "multicast_rcv_packets": ("multicast_packets_received_total", "Number of multicast packets received (including errors)", "packets", 1),
    "multicast_xmit_packets": ("multicast_packets_transmitted_total", "Number of multicast packets transmitted (including errors)", "packets", 1),
    "port_rcv_constraint_errors": ("port_constraint_errors_received_total", "Number of packets received on the switch physical port that are discarded", "packets", 1),
    "port_xmit_constraint_errors": ("port_constraint_errors_transmitted_total", "Number of packets not transmitted from the switch physical port", "packets", 1),
    "port_rcv_data": ("port_data_received_bytes_total", "Number of data octets received on all links", "bytes", 4),
    "port_xmit_data": ("port_data_transmitted_bytes_total", "Number of data octets transmitted on all links", "bytes", 4),
    "port_rcv_discards": ("port_discards_received_total", "Number of inbound packets discarded by the port because the port is down or congested", "packets", 1),
    "port_xmit_discards": ("port_discards_transmitted_total", "Number of outbound packets discarded by the port because the port is down or congested", "packets", 1),
    "port_rcv_errors": ("port_errors_received_total", "Number of packets containing an error that were received on this port", "packets", 1),
    "port_rcv_packets": ("port_packets_received_total", "Number of packets received on all VLs by this port (including errors)", "packets", 1),
    "port_xmit_packets": ("port_packets_transmitted_total", "Number of packets transmitted on all VLs from this port (including errors)", "packets", 1),
    "port_xmit_wait": ("port_transmit_wait_total", "Number of ticks during which the port had data to transmit but no data was sent during the entire tick", "ticks", 1),
    "unicast_rcv_packets": ("unicast_packets_received_total", "Number of unicast packets received (including errors)", "packets", 1),
    "unicast_xmit_packets": ("unicast_packets_transmitted_total", "Number of unicast packets transmitted (including errors)", "packets", 1),
    "port_rcv_remote_physical_errors": ("port_receive_remote_physical_errors_total", "Number of packets marked with the EBP (End of Bad Packet) delimiter received on the port.", "packets", 1),
    "port_rcv_switch_relay_errors": ("port_receive_switch_relay_errors_total", "Number of packets that could not be forwarded by the switch.", "packets", 1),
    "symbol_error": ("symbol_error_total", "Number of minor link errors detected on one or more physical lanes.", "errors", 1),
    "VL15_dropped": ("vl15_dropped_total", "Number of incoming VL15 packets dropped due to resource limitations.", "packets", 1),
}

# Kernels before 4.5 kept the 64-bit counters apart in counters_ext/.
LEGACY_COUNTERS = {
    "port_multicast_rcv_packets": ("legacy_multicast_packets_received_total", "Number of multicast packets received", "packets", 1),
    "port_multicast_xmit_packets": ("legacy_multicast_packets_transmitted_total", "Number of multicast packets transmitted", "packets", 1),
    "port_rcv_data_64": ("legacy_data_received_bytes_total", "Number of data octets received on all links", "bytes", 4),
    "port_rcv_packets_64": ("legacy_packets_received_total", "Number of data packets received on all links", "packets", 1),
    "port_unicast_rcv_packets": ("legacy_unicast_packets_received_total", "Number of unicast packets received", "packets", 1),
    "port_unicast_xmit_packets": ("legacy_unicast_packets_transmitted_total", "Number of unicast packets transmitted", "packets", 1),
    "port_xmit_data_64": ("legacy_data_transmitted_bytes_total", "Number of data octets transmitted on all links", "bytes", 4),
    "port_xmit_packets_64": ("legacy_packets_transmitted_total", "Number of data packets transmitted on all links", "packets", 1),
}

# hw_counters/<file>, mlx5 (NVIDIA "Understanding mlx5 Linux counters and status parameters").
HW_COUNTERS = {
    "duplicate_request": ("duplicate_requests_packets_total", "The number of received packets. A duplicate request is a request that had been previously executed.", "packets", 1),
    "implied_nak_seq_err": ("implied_nak_seq_errors_total", "The number of times the requester decided an ACK with a PSN larger than the expected PSN for an RDMA read or response.", "errors", 1),
    "local_ack_timeout_err": ("local_ack_timeout_errors_total", "The number of times QP's ack timer expired for RC, XRC, DCT QPs at the sender side (retry limit not yet exceeded).", "errors", 1),
    "np_cnp_sent": ("np_cnp_packets_sent_total", "The number of CNP packets sent by the Notification Point when it noticed congestion (ECN) in the RoCEv2 IP header.", "packets", 1),
    "np_ecn_marked_roce_packets": ("np_ecn_marked_roce_packets_received_total", "The number of RoCEv2 packets received by the notification point which were marked for experiencing congestion.", "packets", 1),
    "out_of_buffer": ("out_of_buffer_drops_total", "The number of drops occurred due to lack of WQE for the associated QPs.", "packets", 1),
    "out_of_sequence": ("out_of_sequence_packets_received_total", "The number of out of sequence packets received.", "packets", 1),
    "packet_seq_err": ("packet_sequence_errors_total", "The number of received NAK sequence error packets. The QP retry limit was not exceeded.", "errors", 1),
    "req_cqe_error": ("req_cqes_errors_total", "The number of times requester detected CQEs completed with errors.", "errors", 1),
    "req_cqe_flush_error": ("req_cqes_flush_errors_total", "The number of times requester detected CQEs completed with flushed errors.", "errors", 1),
    "req_remote_access_errors": ("req_remote_access_errors_total", "The number of times requester detected remote access errors.", "errors", 1),
    "req_remote_invalid_request": ("req_remote_invalid_request_errors_total", "The number of times requester detected remote invalid request errors.", "errors", 1),
    "req_rnr_retries_exceeded": ("infiniband_port_req_rnr_retries_exceeded_total", "The number of times the requester exhausted its RNR NAK retries (ClusterWatch's name: node_exporter has no such counter).", "errors", 1),
    "req_transport_retries_exceeded": ("infiniband_port_req_transport_retries_exceeded_total", "The number of times the requester exhausted its transport retries: the QP went to error (ClusterWatch's name: node_exporter has no such counter).", "errors", 1),
    "resp_cqe_error": ("resp_cqes_errors_total", "The number of times responder detected CQEs completed with errors.", "errors", 1),
    "resp_cqe_flush_error": ("resp_cqes_flush_errors_total", "The number of times responder detected CQEs completed with flushed errors.", "errors", 1),
    "resp_local_length_error": ("resp_local_length_errors_total", "The number of times responder detected local length errors.", "errors", 1),
    "resp_remote_access_errors": ("resp_remote_access_errors_total", "The number of times responder detected remote access errors.", "errors", 1),
    "rnr_nak_retry_err": ("rnr_nak_retry_packets_received_total", "The number of received RNR NAK packets. The QP retry limit was not exceeded.", "packets", 1),
    "roce_adp_retrans": ("roce_adp_retransmits_total", "The number of adaptive retransmissions for RoCE traffic.", "packets", 1),
    "roce_adp_retrans_to": ("roce_adp_retransmits_timeout_total", "The number of times RoCE traffic reached timeout due to adaptive retransmission.", "events", 1),
    "roce_slow_restart": ("roce_slow_restart_used_total", "The number of times RoCE slow restart was used.", "events", 1),
    "roce_slow_restart_cnps": ("roce_slow_restart_cnps_total", "The number of times RoCE slow restart generated CNP packets.", "packets", 1),
    "roce_slow_restart_trans": ("roce_slow_restart_total", "The number of times RoCE slow restart changed state to slow restart.", "events", 1),
    "rp_cnp_handled": ("rp_cnp_packets_handled_total", "The number of CNP packets handled by the Reaction Point HCA to throttle the transmission rate.", "packets", 1),
    "rp_cnp_ignored": ("rp_cnp_ignored_packets_received_total", "The number of CNP packets received and ignored by the Reaction Point HCA.", "packets", 1),
    "rx_atomic_requests": ("rx_atomic_requests_total", "The number of received ATOMIC request for the associated QPs.", "requests", 1),
    "rx_dct_connect": ("rx_dct_connect_requests_total", "The number of received connection requests for the associated DCTs.", "requests", 1),
    "rx_icrc_encapsulated": ("rx_icrc_encapsulated_errors_total", "The number of RoCE packets with ICRC errors.", "packets", 1),
    "rx_read_requests": ("rx_read_requests_total", "The number of received READ requests for the associated QPs.", "requests", 1),
    "rx_write_requests": ("rx_write_requests_total", "The number of received WRITE requests for the associated QPs.", "requests", 1),
}

# ClusterWatch's own counters keep out of node_exporter's namespace (a shared Prometheus may hold
# both exporters' series, and node_ names are node_exporter's to define).
OWN_NAMESPACE = "infiniband_port_"


def family_name(name: str) -> str:
    """The exposed name of a table entry: node_exporter's ``node_infiniband_<name>``, or ours as is."""
    return name if name.startswith(OWN_NAMESPACE) else f"node_infiniband_{name}"


# counters directory -> its table
COUNTER_DIRS = (("counters", PORT_COUNTERS), ("counters_ext", LEGACY_COUNTERS), ("hw_counters", HW_COUNTERS))

TABLE = metric_table(
    gauge("node_infiniband_info", "Non-numeric data from /sys/class/infiniband/<device>, value is always 1.",
          ("device", "board_id", "firmware_version", "hca_type"), "info",
          "/sys/class/infiniband/<device>/{board_id,fw_ver,hca_type}"),
    gauge("node_infiniband_state_id", "State of the InfiniBand port (0: no change, 1: down, 2: init, 3: armed, "
          "4: active, 5: act defer)", PORT_LABELS, "enum", _PORT_SRC + "state"),
    gauge("node_infiniband_physical_state_id", "Physical state of the InfiniBand port (0: no change, 1: sleep, "
          "2: polling, 3: disable, 4: shift, 5: link up, 6: link error recover, 7: phytest)", PORT_LABELS, "enum",
          _PORT_SRC + "phys_state"),
    gauge("node_infiniband_rate_bytes_per_second", "Maximum signal transfer rate", PORT_LABELS, "bytes per second",
          _PORT_SRC + "rate"),
    gauge("node_infiniband_lifespan_seconds", "The maximum period which defines the aging of the hw counter "
          "reads. Two consecutive reads within this period might return the same values.", PORT_LABELS,
          "seconds", _PORT_SRC + "hw_counters/lifespan (ms)"),
    *(counter(family_name(name), text + (" (counter x 4: the file counts 4-byte words)" if scale == 4 else ""),
              PORT_LABELS, unit, f"{_PORT_SRC}{directory}/{file}")
      for directory, table in COUNTER_DIRS for file, (name, text, unit, scale) in table.items()),
)


@register_collector("infiniband")
class InfiniBandCollector(Collector):
    """InfiniBand HCA ports: state, rate, data, packets and every error counter (node_exporter names)."""

    def collect(self) -> FamilySet:
        sysfs = self.ctx.sysfs
        try:
            devices = sysfs.listdir(CLASS_DIR)
        except FileNotFoundError:
            raise NoDataError("no /sys/class/infiniband: no InfiniBand HCA on this node") from None
        if not devices:
            raise NoDataError("/sys/class/infiniband is empty")
        out = FamilySet(TABLE)
        for device in devices:
            self._device(out, f"{CLASS_DIR}/{device}", device)
        return out

    def _attribute(self, path: str, required: bool) -> str:
        # board_id and hca_type are optional in the ABI (not every driver has them); fw_ver is not.
        value = read_source(self.ctx.sysfs, path, str.strip, self.skip, absent_ok=not required)
        return value or ""

    def _device(self, out: FamilySet, base: str, device: str) -> None:
        out.add(
            "node_infiniband_info", 1, device=device,
            board_id=self._attribute(f"{base}/board_id", False),
            firmware_version=self._attribute(f"{base}/fw_ver", True),
            hca_type=self._attribute(f"{base}/hca_type", False),
        )
        try:
            ports = self.ctx.sysfs.listdir(f"{base}/ports")
        except OSError as exc:
            self.skip(f"{base}/ports", exc)
            return
        for port in ports:
            self._port(out, f"{base}/ports/{port}", device, port)

    def _port(self, out: FamilySet, base: str, device: str, port: str) -> None:
        sysfs, skip = self.ctx.sysfs, self.skip
        values: list[tuple[str, float]] = []  # every family of the port has its device and port labels only
        for name, file, parse in (
            ("node_infiniband_state_id", "state", parse_ib_state),
            ("node_infiniband_physical_state_id", "phys_state", parse_ib_state),
            ("node_infiniband_rate_bytes_per_second", "rate", parse_ib_rate),
        ):
            value = read_source(sysfs, f"{base}/{file}", parse, skip)
            if value is not None:
                values.append((name, value))
        for directory, table in COUNTER_DIRS:
            path = f"{base}/{directory}"
            try:
                files = sysfs.listdir(path)
            except FileNotFoundError:
                continue  # counters_ext exists on old kernels only, hw_counters on some drivers only
            except OSError as exc:
                skip(path, exc)
                continue
            for file in files:
                if file == "lifespan" and directory == "hw_counters":
                    ms = read_source(sysfs, f"{path}/{file}", parse_ib_counter, skip)
                    if ms is not None:
                        values.append(("node_infiniband_lifespan_seconds", ms / 1000))
                    continue
                entry = table.get(file)
                if entry is None:
                    continue  # a counter this version does not know: not exposed, not an error
                value = read_source(sysfs, f"{path}/{file}", parse_ib_counter, skip)
                if value is not None:
                    values.append((family_name(entry[0]), value * entry[3]))
        out.add_all(values, device=device, port=port)
