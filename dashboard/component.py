"""The dashboard as one server component: its routers, built from a ``DashboardContext``."""
from __future__ import annotations

from cwkernel.server import Component
from dashboard.context import DashboardContext
from dashboard.routes import actions, alerts, jobs, nodes, overview, static, users


def dashboard_component(ctx: DashboardContext) -> Component:
    routers = [overview.build_router(ctx), jobs.build_router(ctx), nodes.build_router(ctx),
               users.build_router(ctx), alerts.build_router(ctx), actions.build_router(ctx), static.build_router()]
    return Component("dashboard", routers=routers)
