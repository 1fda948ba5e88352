"""``/nodes``, ``/nodes/{name}`` and their JSON."""
from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from dashboard.compress import GzipRoute
from dashboard.context import DashboardContext
from dashboard.pages import render_page
from dashboard.params import RangeParams, check_node
from dashboard.routes.common import run_view
from dashboard.views.nodes import NodesView, NodeView, node, nodes


def build_router(ctx: DashboardContext) -> APIRouter:
    router = APIRouter(tags=["nodes"], route_class=GzipRoute)

    def list_view(rp: RangeParams = Depends()) -> NodesView:
        return run_view(lambda: nodes(ctx, rp.resolve(ctx.clock())))

    def node_view(name: str, rp: RangeParams = Depends()) -> NodeView:
        check_node(name)
        return run_view(lambda: node(ctx, rp.resolve(ctx.clock()), name))

    @router.get("/api/nodes", response_model=NodesView)
    def nodes_json(model: NodesView = Depends(list_view)) -> NodesView:
        return model

    @router.get("/api/nodes/{name}", response_model=NodeView)
    def node_json(model: NodeView = Depends(node_view)) -> NodeView:
        return model

    @router.get("/nodes", response_class=HTMLResponse, include_in_schema=False)
    def nodes_page(model: NodesView = Depends(list_view)) -> HTMLResponse:
        return render_page("Nodes", "nodes", "/api/nodes", model)

    @router.get("/nodes/{name}", response_class=HTMLResponse, include_in_schema=False)
    def node_page(model: NodeView = Depends(node_view)) -> HTMLResponse:
        return render_page(f"Node {model.name}", "node", f"/api/nodes/{model.name}", model)

    return router
