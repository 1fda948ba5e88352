"""NVIDIA's XID catalog, shipped with the exporter, and one normalised action per XID code.

The catalog (``exporter/data/xid-catalog.csv``, see the README beside it) gives for each code
NVIDIA's mnemonic, a description, the *immediate* action to take and the *investigatory* action
that follows. Its action vocabulary is NVIDIA's (``RESTART_BM``, ``WORKFLOW_XID_48``, ...) and
grows with each catalog release; alert rules and remediation policies need a small, fixed set
they can match on. ``ACTION_CLASSES`` below is that set and the one place it is defined; every
immediate action of the catalog maps to exactly one class:

- ``ignore``: IGNORE. Informational, nothing to do.
- ``restart_app``: RESTART_APP. The application faulted, the GPU is fine: requeue the job.
- ``reset_gpu``: RESET_GPU. Reset the GPU once its processes are gone, then verify it.
- ``reboot``: RESTART_BM, RESTART_VM. Reboot the node (bare metal, or the VM it is).
- ``check_hardware``: CHECK_MECHANICALS. A physical fault (power cable, seating): drain, send a tech.
- ``update_sw``: UPDATE_SWFW. Driver/firmware/software mismatch: update before returning to service.
- ``workflow``: WORKFLOW_* (NVLink, XID 45, XID 48) and CHECK_UVM. NVIDIA documents a multi-step
  diagnosis; the right action depends on other signals (row remapping, the XIDs around it).
- ``recovery``: XID_154. The driver changed the GPU's recovery action: follow NVML's
  ``gpu_recovery_action`` (reset, reboot, drain and reset).
- ``contact_support``: CONTACT_SUPPORT. A hardware fault for NVIDIA or the vendor (RMA).
- ``unknown``: a code the catalog does not list (a newer driver), or lists without an action.

``lookup(code)`` never fails: an unknown code gets class ``unknown`` and empty catalog fields,
so an XID from a driver newer than the catalog is still counted and routed, just not classified.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Mapping

UNKNOWN = "unknown"

# NVIDIA's immediate action -> normalised class. Keys are exact catalog values; a value not
# listed here (a new catalog vocabulary) classifies as "unknown" until this table is extended,
# and the catalog test fails so that the refresh is noticed.
_IMMEDIATE_ACTION_CLASS: Mapping[str, str] = MappingProxyType({
    "IGNORE": "ignore",
    "RESTART_APP": "restart_app",
    "RESET_GPU": "reset_gpu",
    "RESTART_BM": "reboot",
    "RESTART_VM": "reboot",
    "CHECK_MECHANICALS": "check_hardware",
    "UPDATE_SWFW": "update_sw",
    "WORKFLOW_NVLINK_ERR": "workflow",
    "WORKFLOW_NVLINK5_ERR": "workflow",
    "WORKFLOW_XID_45": "workflow",
    "WORKFLOW_XID_48": "workflow",
    "CHECK_UVM": "workflow",
    "XID_154": "recovery",
    "CONTACT_SUPPORT": "contact_support",
})

# Every class ``lookup`` can return, for label validation and documentation.
ACTION_CLASSES: tuple[str, ...] = (
    "ignore", "restart_app", "reset_gpu", "reboot", "check_hardware", "update_sw", "workflow",
    "recovery", "contact_support", UNKNOWN,
)

CATALOG_RESOURCE = ("exporter", "data/xid-catalog.csv")


@dataclass(frozen=True)
class XidClass:
    """What the catalog says about one XID code; ``known`` is False for codes it does not list."""

    xid: int
    mnemonic: str
    description: str
    immediate_action: str
    investigatory_action: str
    xid154_linkage: str
    action: str
    known: bool


def classify(immediate_action: str) -> str:
    """The normalised class of one of NVIDIA's immediate actions (``unknown`` if unlisted)."""
    return _IMMEDIATE_ACTION_CLASS.get(immediate_action.strip(), UNKNOWN)


def parse_catalog(text: str) -> dict[int, XidClass]:
    """The catalog's rows by code; raises ValueError naming the line of a malformed row."""
    reader = csv.DictReader(io.StringIO(text))
    required = {"xid", "mnemonic", "description", "immediate_action", "investigatory_action"}
    missing = required - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"XID catalog lacks columns {sorted(missing)}")
    catalog: dict[int, XidClass] = {}
    for row in reader:
        try:
            code = int(row["xid"])
        except (TypeError, ValueError):
            raise ValueError(f"XID catalog line {reader.line_num}: bad xid {row['xid']!r}") from None
        if code in catalog:
            raise ValueError(f"XID catalog line {reader.line_num}: xid {code} listed twice")
        immediate = (row["immediate_action"] or "").strip()
        catalog[code] = XidClass(
            xid=code,
            mnemonic=(row["mnemonic"] or "").strip(),
            description=(row["description"] or "").strip(),
            immediate_action=immediate,
            investigatory_action=(row["investigatory_action"] or "").strip(),
            xid154_linkage=(row.get("xid154_linkage") or "").strip(),
            action=classify(immediate),
            known=True,
        )
    return catalog


@lru_cache(maxsize=1)
def catalog() -> Mapping[int, XidClass]:
    """The shipped catalog, read once per process (through importlib.resources: works installed)."""
    package, path = CATALOG_RESOURCE
    text = resources.files(package).joinpath(path).read_text(encoding="utf-8")
    return MappingProxyType(parse_catalog(text))


def lookup(code: int) -> XidClass:
    """The catalog entry of ``code``, or an ``unknown`` entry for a code the catalog lacks."""
    entry = catalog().get(code)
    if entry is not None:
        return entry
    return XidClass(code, "", "", "", "", "", UNKNOWN, known=False)
