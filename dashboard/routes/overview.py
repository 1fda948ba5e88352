"""``/`` and ``/api/overview``."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import HTMLResponse

from dashboard.compress import GzipRoute
from dashboard.context import DashboardContext
from dashboard.pages import render_page
from dashboard.params import RangeParams
from dashboard.routes.common import model_json, run_view
from dashboard.views.overview import ColorBy, Overview, overview


def build_router(ctx: DashboardContext) -> APIRouter:
    router = APIRouter(tags=["overview"], route_class=GzipRoute)

    def view(rp: RangeParams = Depends(), color: ColorBy = Query("util", description="heatmap colour")) -> Overview:
        return run_view(lambda: overview(ctx, rp.resolve(ctx.clock()), color))

    @router.get("/api/overview", response_model=Overview)
    def overview_json(model: Overview = Depends(view)) -> Response:
        return model_json(model)

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def overview_page(model: Overview = Depends(view)) -> HTMLResponse:
        return render_page("Cluster overview", "overview", "/api/overview", model)

    return router
