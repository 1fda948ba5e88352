"""One definition of a fabric link's health (issue 19): the thresholds, and the recording and
alerting rules of the ``fabric-links`` group written from them.

A link is one cable, named by ``switch``, ``switch_port``, ``peer``, ``peer_port`` (the fabric
contract, docs/alerts.md#fabric-links). Its health is the worst of both ends:

  0 healthy, 1 errors above the threshold, 2 degraded (width or lane rate below what both ends
  can do), 3 flapping, 4 down.

``FABRIC_RULES`` writes the expressions (and ``for``) of the ``fabric-links`` group of
alerts/rules/fabric.yml; tests/alerts/test_fabric_links.py holds the YAML equal to it, as
tests/alerts/test_rules_pack.py holds jobs.yml to ``dashboard.definitions.JOB_RULES``. The fabric
page reads the recorded series or imports these constants; it never re-derives them. This module
lives in ``alerts`` so that the rule pack, ``remediation`` and ``dashboard`` (both above it in
tests/test_layers.py) share it; it imports nothing.

Where each threshold comes from (cited in docs/alerts.md#fabric-links):
- errors: infiniband-diags' ``ibcheckerrs`` flags a port at 10 of SymbolErrorCounter,
  PortRcvErrors, LocalLinkIntegrityErrors or ExcessiveBufferOverrunErrors (its default threshold
  file), and the IBTA bit-error-rate bound of 1e-12 is read by NVIDIA's NIC health monitor
  (NVSentinel) as at most 120 symbol errors an hour: both are 10 errors in 5 minutes.
- flapping: ``ibcheckerrs`` flags 10 LinkDowned or LinkErrorRecovery events since the counters were
  cleared; NVSentinel treats any LinkDowned as fatal for the job and more than 2 carrier changes
  per interval as a flap. A cable that went down or retrained more than twice in 15 minutes is
  flapping (a single event is a reseat, a reboot or a retrain; ``down`` covers one that stays down).
- degraded: below what the link is capable of on either end (IB PortInfo LinkWidthActive <
  LinkWidthEnabled/Supported, LinkSpeedActive < the speed both support): a 4x HDR cable at 2x or at
  EDR's lane rate carries half the traffic or less, and NCCL rings through it slow down.
"""
from __future__ import annotations

LINK = ("switch", "switch_port", "peer", "peer_port")  # a cable's identity on every per-link series
LINK_BY = ", ".join(LINK)

HEALTHY, ERRORS, DEGRADED, FLAPPING, DOWN = 0, 1, 2, 3, 4
HEALTH_NAMES = {HEALTHY: "healthy", ERRORS: "errors", DEGRADED: "degraded", FLAPPING: "flapping", DOWN: "down"}

ACTIVE_STATE = 4  # IB PortState ACTIVE; 1 down, 2 init, 3 armed: no traffic either way
ERRORS_WINDOW = "5m"
ERRORS_WINDOW_SECONDS = 300
ERRORS_IN_WINDOW_ABOVE = 10  # symbol + receive + integrity + buffer-overrun errors in 5 minutes, either end
ERRORS_PER_SECOND_ABOVE = ERRORS_IN_WINDOW_ABOVE / ERRORS_WINDOW_SECONDS  # what the recorded rate is held to
ERRORS_FOR = "5m"
FLAPS_WINDOW = "15m"
FLAPS_ABOVE = 2  # link-downed + error-recovery events in 15 minutes, either end
DOWN_FOR = "2m"  # lets a port retrain after a reseat or a reboot of the node behind it
DEGRADED_FOR = "2m"
SWITCH_BAD_LINKS_AT_LEAST = 3  # one alert for the switch instead of one per link

ERROR_COUNTERS = ("fabric_link_symbol_errors_total", "fabric_link_receive_errors_total",
                  "fabric_link_integrity_errors_total", "fabric_link_buffer_overrun_errors_total")
DOWN_COUNTERS = ("fabric_link_downed_total", "fabric_link_error_recovery_total")

# Recorded series (the fabric contract's names).
ERRORS_RATE = f"fabric_link:errors:rate{ERRORS_WINDOW}"
DOWNED_INCREASE = f"fabric_link:downed:increase{FLAPS_WINDOW}"
HEALTH = "fabric_link:health"
SWITCH_BAD_LINKS = "fabric_switch:bad_links:count"
# Each link's identity for its alerts: link_type, and for a host link the node behind it as
# ``instance`` (the node convention: NodeUnreachable's inhibition and remediation's case per node
# work on it) and the HCA as ``device`` (node_exporter's label, so the host-side InfiniBand alerts
# for the same cable are inhibited by the link's). An inter-switch link has neither.
IDENTITY = "fabric_link:identity:info"

# Alert names.
LINK_DOWN, LINK_FLAPPING, LINK_DEGRADED, LINK_ERRORS = (
    "FabricLinkDown", "FabricLinkFlapping", "FabricLinkDegraded", "FabricLinkErrors")
SWITCH_LINKS_BAD = "FabricSwitchLinksBad"
LINK_ALERTS = (LINK_DOWN, LINK_FLAPPING, LINK_DEGRADED, LINK_ERRORS)


def _condition(code: int, name: str, expr: str) -> str:
    """``expr`` (0/1 per end) as ``code`` or 0, labelled with its condition so that ``or`` keeps
    every condition of an end (they would otherwise share one label set)."""
    scaled = expr if code == 1 else f"{code} * ({expr})"
    return f'label_replace({scaled}, "condition", "{name}", "", "")'


def _with_identity(expr: str) -> str:
    return f"({expr}) * on ({LINK_BY}) group_left (link_type, instance, device) {IDENTITY}"


def _host_action(expr: str, host: str, other: str) -> str:
    """The ``action`` label by link type: a host cable's node can be drained, a switch-side fault
    cannot be fixed by draining one node (remediation's policy decides; this only routes)."""
    return (f'label_replace(label_replace({expr}, "action", "{other}", "", ""),'
            f' "action", "{host}", "link_type", "host")')


FABRIC_RULES: dict[str, tuple[str, str | None]] = {
    ERRORS_RATE: (
        f"sum by ({LINK_BY}, end) ("
        + " + ".join(f"rate({name}[{ERRORS_WINDOW}])" for name in ERROR_COUNTERS) + ")", None),
    DOWNED_INCREASE: (
        f"sum by ({LINK_BY}, end) ("
        + " + ".join(f"increase({name}[{FLAPS_WINDOW}])" for name in DOWN_COUNTERS) + ")", None),
    HEALTH: (
        f"max by ({LINK_BY}) ("
        + _condition(DOWN, "down", f"fabric_link_state != bool {ACTIVE_STATE}")
        + " or " + _condition(FLAPPING, "flapping", f"{DOWNED_INCREASE} > bool {FLAPS_ABOVE}")
        + " or " + _condition(DEGRADED, "degraded",
                              "(fabric_link_width_lanes < bool fabric_link_capable_width_lanes)"
                              " + (fabric_link_lane_rate_bits_per_second"
                              " < bool fabric_link_capable_lane_rate_bits_per_second) > bool 0")
        + " or " + _condition(ERRORS, "errors",
                              f"{ERRORS_RATE} * {ERRORS_WINDOW_SECONDS} > bool {ERRORS_IN_WINDOW_ABOVE}")
        + ")", None),
    IDENTITY: (
        f"max by ({LINK_BY}, link_type, instance, device) ("
        'label_replace(label_replace(fabric_link_info, "instance", "$1", "node", "(.*)"),'
        ' "device", "$1", "peer", "[^ ]+ (.+)"))', None),
    # A switch's bad links: those it is the lower end of, and the inter-switch links it is the
    # upper end of (a spine's links to its leaves); 0 for a switch with none, so the page shows it.
    SWITCH_BAD_LINKS: (
        f"sum by (switch) ("
        f'label_replace(count by (switch) ({HEALTH} >= {ERRORS}), "side", "lower", "", "")'
        f' or label_replace(label_replace(count by (peer) ({HEALTH} >= {ERRORS}'
        f' and on ({LINK_BY}) fabric_link_info{{link_type="isl"}}),'
        ' "switch", "$1", "peer", "(.*)"), "side", "upper", "", ""))'
        " or 0 * max by (switch) (fabric_switch_info)", None),
    LINK_DOWN: (_host_action(_with_identity(f"{HEALTH} == {DOWN}"), "drain", "ticket"), DOWN_FOR),
    LINK_FLAPPING: (_host_action(_with_identity(f"max by ({LINK_BY}) ({DOWNED_INCREASE}) > {FLAPS_ABOVE}"),
                                 "drain", "ticket"), None),
    LINK_DEGRADED: (_with_identity(f"{HEALTH} == {DEGRADED}"), DEGRADED_FOR),
    LINK_ERRORS: (_with_identity(f"max by ({LINK_BY}) ({ERRORS_RATE}) * {ERRORS_WINDOW_SECONDS}"
                                 f" > {ERRORS_IN_WINDOW_ABOVE} and on ({LINK_BY}) {HEALTH} == {ERRORS}"),
                  ERRORS_FOR),
    # The switch's name also as ``peer``: the inhibition of an upper switch's inter-switch links
    # (whose ``switch`` is the lower end) matches on it (alerts/notify/default.yml).
    SWITCH_LINKS_BAD: (f'label_replace({SWITCH_BAD_LINKS} >= {SWITCH_BAD_LINKS_AT_LEAST},'
                       ' "peer", "$1", "switch", "(.*)")', None),
}
