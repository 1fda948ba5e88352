"""Exporter settings: flags over env over file over defaults, and clear errors with exit code 2."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from clusterwatch.cli import build_parser, main
from clusterwatch.commands.exporter import load_config
from cwkernel.errors import ConfigError


def parse(argv: list[str]):
    return build_parser().parse_args(["exporter", *argv])


def test_defaults_are_safe_for_a_node(tmp_path):
    config = load_config(parse([]), environ={})
    assert config.listen == "127.0.0.1:9835"
    assert config.interval == 5.0
    assert config.backend == "nvml"
    assert config.procfs == "/proc" and config.sysfs == "/sys"


def test_flag_beats_env_beats_file(tmp_path):
    file = tmp_path / "exporter.yml"
    file.write_text("interval: 30s\nbackend: fake\nlisten: 127.0.0.1:9000\n")
    env = {"CLUSTERWATCH_EXPORTER_INTERVAL": "10s", "CLUSTERWATCH_EXPORTER_LISTEN": "127.0.0.1:9100"}
    config = load_config(parse(["--config", str(file), "--listen", "127.0.0.1:9200"]), environ=env)
    assert config.listen == "127.0.0.1:9200"  # flag
    assert config.interval == 10.0  # env over file
    assert config.backend == "fake"  # file over default


def test_file_accepts_dashed_keys_and_lists(tmp_path):
    file = tmp_path / "exporter.yml"
    file.write_text("filesystem-mount-points: [/, /scratch]\n")
    config = load_config(parse(["--config", str(file)]), environ={})
    assert config.filesystem_mount_points == ["/", "/scratch"]


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ("intervall: 5s\n", "intervall"),
        ("interval: soon\n", "interval"),
        ("backend: cuda\n", "backend"),
        ("listen: nowhere\n", "listen"),
        ("- just\n- a list\n", "--config"),
        ("interval: [unclosed\n", "--config"),
    ],
)
def test_bad_file_names_the_field_and_the_file(tmp_path, content, field):
    file = tmp_path / "exporter.yml"
    file.write_text(content)
    with pytest.raises(ConfigError) as raised:
        load_config(parse(["--config", str(file)]), environ={})
    assert raised.value.field == field
    assert str(file) in str(raised.value)


def test_bad_env_var_is_named(tmp_path):
    with pytest.raises(ConfigError) as raised:
        load_config(parse([]), environ={"CLUSTERWATCH_EXPORTER_INTERVAL": "-3s"})
    assert "CLUSTERWATCH_EXPORTER_INTERVAL" in str(raised.value)


def test_scenario_requires_the_fake_backend(tmp_path):
    scenario = tmp_path / "s.yml"
    scenario.write_text("{}\n")
    with pytest.raises(ConfigError, match="fake_scenario"):
        load_config(parse(["--fake-scenario", str(scenario)]), environ={})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--interval", "0s"], "interval"),
        (["--collectors", "node,warp_drive"], "warp_drive"),
        (["--procfs", "/nonexistent/proc"], "procfs"),
        (["--listen", "127.0.0.1:99999"], "listen"),
    ],
)
def test_cli_exits_2_naming_the_option(argv, message, capsys):
    assert main(["exporter", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "error" in err


def test_unknown_flag_exits_2_from_the_console_script():
    result = subprocess.run([sys.executable, "-m", "clusterwatch", "exporter", "--no-such-flag"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--no-such-flag" in result.stderr
