"""``/``, ``/api/overview`` and the node drill-down of the overview at scale, ``/api/overview/gpus/{name}``."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import HTMLResponse

from dashboard.compress import GzipRoute
from dashboard.context import DashboardContext
from dashboard.pages import render_page
from dashboard.params import RangeParams, check_node
from dashboard.routes.common import model_json, run_view
from dashboard.views.overview import ColorBy, Overview, overview
from dashboard.views.overview_nodes import NodeGpus, node_gpus


def build_router(ctx: DashboardContext) -> APIRouter:
    router = APIRouter(tags=["overview"], route_class=GzipRoute)

    def view(rp: RangeParams = Depends(),
             color: ColorBy = Query("util", description="colour of the GPU (at scale: node) cells")) -> Overview:
        return run_view(lambda: overview(ctx, rp.resolve(ctx.clock()), color))

    @router.get("/api/overview", response_model=Overview)
    def overview_json(model: Overview = Depends(view)) -> Response:
        return model_json(model)

    @router.get("/api/overview/gpus/{name}", response_model=NodeGpus)
    def node_gpus_json(name: str, rp: RangeParams = Depends()) -> Response:
        check_node(name)
        return model_json(run_view(lambda: node_gpus(ctx, rp.resolve(ctx.clock()), name)))

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def overview_page(model: Overview = Depends(view)) -> HTMLResponse:
        return render_page("Cluster overview", "overview", "/api/overview", model)

    return router
