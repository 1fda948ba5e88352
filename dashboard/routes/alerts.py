"""``/alerts`` and ``/api/alerts-view``. The actions on this page (silence, expire, acknowledge)
are the alerting API's own authenticated routes (``/api/silences``, ``/api/alerts/{fp}/ack``);
the dashboard adds no second way to change alert state."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse

from dashboard.compress import GzipRoute
from dashboard.context import DashboardContext
from dashboard.pages import render_page
from dashboard.params import RangeParams, bad_request
from dashboard.routes.common import run_view
from dashboard.views.alerts import AlertFilters, AlertsView, alerts_page

LABEL_VALUE_MAX = 256


def build_router(ctx: DashboardContext) -> APIRouter:
    router = APIRouter(tags=["alerts"], route_class=GzipRoute)

    def view(rp: RangeParams = Depends(),
             severity: str | None = Query(None, max_length=LABEL_VALUE_MAX, description="exact severity"),
             alertname: str | None = Query(None, max_length=LABEL_VALUE_MAX, description="exact alert name"),
             instance: str | None = Query(None, max_length=LABEL_VALUE_MAX,
                                          description="regular expression over the whole instance label")) -> AlertsView:
        filters = AlertFilters(severity=severity or None, alertname=alertname or None, instance=instance or None)
        try:
            filters.matchers()
        except ValueError as exc:
            raise bad_request(f"instance: {exc}") from None
        return run_view(lambda: alerts_page(ctx, rp.resolve(ctx.clock()), filters))

    @router.get("/api/alerts-view", response_model=AlertsView)
    def alerts_json(model: AlertsView = Depends(view)) -> AlertsView:
        return model

    @router.get("/alerts", response_class=HTMLResponse, include_in_schema=False)
    def alerts_html(model: AlertsView = Depends(view)) -> HTMLResponse:
        return render_page("Alerts", "alerts", "/api/alerts-view", model)

    return router
