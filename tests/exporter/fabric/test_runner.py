"""The real tool runner: argv only, refused arguments, and every way a tool can fail to answer."""
from __future__ import annotations

import time

import pytest

from exporter.fabric.runner import SubprocessRunner, ToolError, check_argv
from tests.exporter.fabric.support import tool


def test_output_and_argv_reach_the_tool(tmp_path):
    tool(tmp_path, "perfquery", "print(' '.join(sys.argv[1:]))")
    result = SubprocessRunner(str(tmp_path)).run(["perfquery", "-x", "-l", "-G", "0xabc", "1,2,3"], 10, 1 << 20)
    assert result.stdout == "-x -l -G 0xabc 1,2,3\n"


@pytest.mark.parametrize("argv", [["sh", "-c", "id"], ["perfquery", "1;reboot"], ["iblinkinfo", "--node-name-map=/etc/x"],
                                  ["ibnetdiscover", "$(id)"], []])
def test_only_the_fabric_tools_with_checked_arguments(argv):
    with pytest.raises(ToolError):
        check_argv(argv)


def test_a_tool_that_hangs_is_killed_at_its_timeout(tmp_path):
    tool(tmp_path, "iblinkinfo", "print('partial', flush=True)\ntime.sleep(600)")
    began = time.monotonic()
    with pytest.raises(ToolError, match="no answer within 0.5 s"):
        SubprocessRunner(str(tmp_path)).run(["iblinkinfo"], 0.5, 1 << 20)
    assert time.monotonic() - began < 30  # killed, not waited for


def test_a_tool_that_fails_says_its_status_and_stderr(tmp_path):
    tool(tmp_path, "ibnetdiscover", "sys.stderr.write('ibwarn: umad_open_port: cannot open /dev/infiniband/umad0\\n')\n"
                                    "sys.exit(1)")
    with pytest.raises(ToolError, match="exit status 1: ibwarn: umad_open_port"):
        SubprocessRunner(str(tmp_path)).run(["ibnetdiscover"], 10, 1 << 20)


def test_a_tool_that_prints_100_mb_is_cut_at_the_cap(tmp_path):
    tool(tmp_path, "perfquery", "chunk = b'x' * (1 << 20)\nfor _ in range(100):\n    sys.stdout.buffer.write(chunk)")
    with pytest.raises(ToolError, match="output over 1,048,576 bytes"):
        SubprocessRunner(str(tmp_path)).run(["perfquery", "-x"], 60, 1 << 20)


def test_a_missing_tool_is_an_error_not_a_crash(tmp_path):
    with pytest.raises(ToolError, match="cannot run"):
        SubprocessRunner(str(tmp_path)).run(["ibnetdiscover"], 10, 1 << 20)
