"""``GET /api/banner``: the notice every page shows above its heading (``serve --banner``; the demo
says there that the cluster is simulated and how to let automation act). Empty when none is set."""
from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from dashboard.context import DashboardContext


class BannerOut(BaseModel):
    banner: str = Field(description="the notice, or an empty string")


def build_router(ctx: DashboardContext) -> APIRouter:
    router = APIRouter()

    @router.get("/api/banner", response_model=BannerOut)
    def banner() -> BannerOut:
        return BannerOut(banner=ctx.banner)

    return router
