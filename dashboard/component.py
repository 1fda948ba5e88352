"""The dashboard as one server component: its routers, built from a ``DashboardContext``."""
from __future__ import annotations

from typing import Any, Mapping

from cwkernel.server import Component, Deps
from dashboard.context import DashboardContext
from dashboard.options import MAX_BANNER_CHARS
from dashboard.routes import actions, alerts, banner, fabric, jobs, nodes, overview, reliability, static, users
from scheduler.audit import AuditLog


def dashboard_component(ctx: DashboardContext) -> Component:
    # reliability before jobs: its /api/jobs/1234/continuity before a pod's /api/jobs/<namespace>/<pod>.
    routers = [overview.build_router(ctx), reliability.build_router(ctx), jobs.build_router(ctx),
               nodes.build_router(ctx), users.build_router(ctx), alerts.build_router(ctx), fabric.build_router(ctx),
               actions.build_router(ctx),
               banner.build_router(ctx), static.build_router()]
    return Component("dashboard", routers=routers)


def build(values: Mapping[str, Any], deps: Deps) -> Component:
    """The dashboard over the request lane of the query interface, with the scheduler adapter,
    its recent actions, the notification pipeline's reader and the remediation engine's presence
    when ``serve`` runs them."""
    from cwkernel.errors import ConfigError

    audit = deps.audit if deps.audit is not None else AuditLog()
    text = values.get("banner") or ""
    if len(text) > MAX_BANNER_CHARS:
        raise ConfigError("banner", f"at most {MAX_BANNER_CHARS} characters (got {len(text)})", deps.config_file)
    return dashboard_component(DashboardContext(deps.request_query, deps.scheduler, audit, alerting=deps.alerting,
                                                automation=deps.remediation is not None, banner=text))
