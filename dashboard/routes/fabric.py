"""``/fabric``, ``/fabric/switch/{name}`` and their JSON, ``/api/fabric`` and ``/api/fabric/switch/{name}``."""
from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, Response
from fastapi.responses import HTMLResponse

from dashboard.compress import GzipRoute
from dashboard.context import DashboardContext
from dashboard.pages import render_page
from dashboard.params import RangeParams, bad_request
from dashboard.routes.common import model_json, run_view
from dashboard.views.fabric import FabricView, SwitchView, fabric, switch
from dashboard.views.fabric_links import is_switch_name


def check_switch(name: str) -> str:
    if not is_switch_name(name):
        raise bad_request(f"not a switch name: {name[:80]!r}")
    return name


def build_router(ctx: DashboardContext) -> APIRouter:
    router = APIRouter(tags=["fabric"], route_class=GzipRoute)

    def fabric_view(rp: RangeParams = Depends()) -> FabricView:
        return run_view(lambda: fabric(ctx, rp.resolve(ctx.clock())))

    def switch_view(name: str, rp: RangeParams = Depends()) -> SwitchView:
        check_switch(name)
        return run_view(lambda: switch(ctx, rp.resolve(ctx.clock()), name))

    @router.get("/api/fabric", response_model=FabricView)
    def fabric_json(model: FabricView = Depends(fabric_view)) -> Response:
        return model_json(model)

    # ``:path``: a switch named from a vendor default ("MF0;sw:MQM8700/U1") has a slash in its name.
    @router.get("/api/fabric/switch/{name:path}", response_model=SwitchView)
    def switch_json(model: SwitchView = Depends(switch_view)) -> Response:
        return model_json(model)

    @router.get("/fabric", response_class=HTMLResponse, include_in_schema=False)
    def fabric_page(model: FabricView = Depends(fabric_view)) -> HTMLResponse:
        return render_page("Fabric", "fabric", "/api/fabric", model)

    @router.get("/fabric/switch/{name:path}", response_class=HTMLResponse, include_in_schema=False)
    def switch_page(model: SwitchView = Depends(switch_view)) -> HTMLResponse:
        return render_page(f"Switch {model.name}", "fabric", f"/api/fabric/switch/{quote(model.name, safe='')}",
                           model)

    return router
