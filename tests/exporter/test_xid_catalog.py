"""The shipped XID catalog loads, every NVIDIA action in it is classified, unknown codes are safe."""
from __future__ import annotations

import csv
import io
from importlib import resources

import pytest

from exporter.xid_catalog import ACTION_CLASSES, UNKNOWN, catalog, classify, lookup, parse_catalog


@pytest.mark.parametrize(
    ("code", "mnemonic", "action"),
    [
        (13, "ROBUST_CHANNEL_GR_EXCEPTION / ROBUST_CHANNEL_GR_ERROR_SW_NOTIFY", "restart_app"),
        (48, "ROBUST_CHANNEL_GPU_ECC_DBE", "workflow"),
        (54, "SILENT_RUNNING_PWR_REDUCED_CLOCKING", "check_hardware"),
        (74, "NVLINK_ERROR", "workflow"),
        (79, "ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS", "reboot"),
        (151, "ROBUST_CHANNEL_KEY_ROTATION_ERROR", "reboot"),
        (154, "GPU_RECOVERY_ACTION_CHANGED", "recovery"),
    ],
)
def test_known_codes_carry_nvidia_facts_and_a_normalised_action(code, mnemonic, action):
    entry = lookup(code)
    assert entry.known and entry.xid == code
    assert entry.mnemonic == mnemonic
    assert entry.action == action
    assert entry.description  # every listed code has one


def test_actions_and_descriptions_come_through_unchanged_from_the_csv():
    entry = lookup(45)  # a description with a comma inside quotes in the CSV
    assert entry.description.startswith("Preemptive cleanup, due to previous errors")
    assert entry.immediate_action == "WORKFLOW_XID_45"
    assert entry.investigatory_action == "Solo: RESTART_FM Not Solo: IGNORE (follow other Xid)"
    assert lookup(79).xid154_linkage == "CUDA 12.7; GPU driver R565"


def test_every_immediate_action_of_the_shipped_catalog_is_classified():
    # A refreshed catalog that brings a new action word fails here until the table is extended.
    text = resources.files("exporter").joinpath("data/xid-catalog.csv").read_text()
    actions = {row["immediate_action"].strip() for row in csv.DictReader(io.StringIO(text))}
    unclassified = sorted(a for a in actions if a and classify(a) == UNKNOWN)
    assert unclassified == []
    assert {entry.action for entry in catalog().values()} <= set(ACTION_CLASSES)


def test_codes_listed_without_an_action_and_unlisted_codes_are_unknown():
    listed = lookup(162)  # PSHC_REENGAGED: in the catalog, no action given
    assert listed.known and listed.mnemonic == "PSHC_REENGAGED" and listed.action == UNKNOWN
    unlisted = lookup(9999)
    assert not unlisted.known and unlisted.action == UNKNOWN
    assert unlisted.xid == 9999 and unlisted.mnemonic == ""


def test_catalog_has_every_row_once():
    assert len(catalog()) == 109
    assert all(code == entry.xid for code, entry in catalog().items())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("xid,mnemonic\n1,A\n", "lacks columns"),
        ("xid,mnemonic,description,immediate_action,investigatory_action\nx,A,B,IGNORE,\n", "line 2: bad xid"),
        ("xid,mnemonic,description,immediate_action,investigatory_action\n1,A,B,IGNORE,\n1,C,D,IGNORE,\n",
         "xid 1 listed twice"),
    ],
)
def test_a_malformed_catalog_is_refused_with_the_line(text, message):
    with pytest.raises(ValueError, match=message):
        parse_catalog(text)
