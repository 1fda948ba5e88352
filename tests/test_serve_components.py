"""What `clusterwatch serve` runs for a given mode (the components it assembles)."""
from __future__ import annotations

import pytest

from clusterwatch.cli import build_parser
from clusterwatch.commands import serve


def components(*argv: str) -> list[str]:
    _, config, values = serve.load_config(build_parser().parse_args(["serve", *argv]), environ={})
    return [component.name for component in serve.build_components(values, config)]


def test_embedded_mode_evaluates_the_pack_itself():
    assert {"tsdb", "rules", "alerting", "dashboard", "self-ingest"} <= set(components())


def test_prometheus_mode_leaves_evaluation_to_prometheus_unless_rules_are_given(tmp_path):
    # Prometheus or vmalert evaluates the exported pack and Alertmanager delivers it: a second
    # evaluation here would record every alert twice (found by the end-to-end test).
    names = components("--prometheus-url", "http://127.0.0.1:9")
    assert "rules" not in names and "tsdb" not in names and "alerting" in names
    rules = tmp_path / "extra.yml"
    rules.write_text("groups: []\n")
    assert "rules" in components("--prometheus-url", "http://127.0.0.1:9", "--rules", str(rules))


def test_the_dashboard_reads_the_pipeline_and_knows_about_remediation_from_what_serve_hands_it():
    from fastapi.testclient import TestClient

    from cwkernel.server import build_app

    scheduler = ("--scheduler", "slurmrestd", "--scheduler-url", "http://127.0.0.1:9")
    for argv, automation in (((), False), (scheduler + ("--automation", "dry-run"), True)):
        _, config, values = serve.load_config(build_parser().parse_args(["serve", *argv]), environ={})
        client = TestClient(build_app(serve.build_components(values, config)))  # not started: nothing polls
        view = client.get("/api/alerts-view").json()
        assert (view["connected"], view["automation"]) == (True, automation)


def test_scrape_series_limit_parses_job_n_and_names_the_setting_when_wrong() -> None:
    from clusterwatch.commands.serve import FABRIC_SERIES_LIMIT, series_limits
    from cwkernel.errors import ConfigError

    assert series_limits([]) == {"clusterwatch-fabric": FABRIC_SERIES_LIMIT}
    assert series_limits(["clusterwatch-fabric=900000", "big=60000"]) == {"clusterwatch-fabric": 900000, "big": 60000}
    for bad in ("big", "big=", "=5", "big=-1", "big=0", "big=1e6"):
        with pytest.raises(ConfigError, match="scrape_series_limit"):
            series_limits([bad], "serve.yml")


def test_max_series_sets_the_stores_total() -> None:
    """The store's total was fixed at 2,000,000 series (about 4 GB): a larger server could not hold
    more, a smaller one could not be kept from the OOM killer."""
    _, config, _ = serve.load_config(build_parser().parse_args(["serve", "--max-series", "300000"]), environ={})
    assert config.limits.max_series_total == 300_000
    _, config, _ = serve.load_config(build_parser().parse_args(["serve"]), environ={})
    assert config.limits.max_series_total == 2_000_000
