"""``/users`` and ``/api/users``."""
from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from dashboard.compress import GzipRoute
from dashboard.context import DashboardContext
from dashboard.pages import render_page
from dashboard.params import RangeParams
from dashboard.routes.common import run_view
from dashboard.views.users import UsersView, users


def build_router(ctx: DashboardContext) -> APIRouter:
    router = APIRouter(tags=["users"], route_class=GzipRoute)

    def view(rp: RangeParams = Depends()) -> UsersView:
        return run_view(lambda: users(ctx, rp.resolve(ctx.clock())))

    @router.get("/api/users", response_model=UsersView)
    def users_json(model: UsersView = Depends(view)) -> UsersView:
        return model

    @router.get("/users", response_class=HTMLResponse, include_in_schema=False)
    def users_page(model: UsersView = Depends(view)) -> HTMLResponse:
        return render_page("GPU usage by user", "users", "/api/users", model)

    return router
