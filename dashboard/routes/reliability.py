"""``/reliability`` and its JSON ``/api/reliability`` (default range 7 days), and the job page's
Continuity section, ``/api/jobs/{job_id}/continuity`` (the page's range; a pod's
``/api/jobs/{namespace}/{pod}/continuity``). Mounted before the jobs' routes: ``/api/jobs/1234/continuity``
is a Slurm job's section, not a pod named "continuity" (a namespace named like a Slurm job id and
such a pod would be shadowed)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from fastapi.responses import HTMLResponse

from dashboard.compress import GzipRoute
from dashboard.context import DashboardContext
from dashboard.pages import render_page
from dashboard.params import RangeParams, check_job_id, parse_range
from dashboard.routes.common import model_json, run_view
from dashboard.views.job_continuity import JobContinuity, job_continuity
from dashboard.views.reliability import ReliabilityView, reliability

DEFAULT_RANGE = "7d"  # a week's review; reliability.js sets the picker to it


def build_router(ctx: DashboardContext) -> APIRouter:
    router = APIRouter(tags=["reliability"], route_class=GzipRoute)

    def reliability_view(rp: RangeParams = Depends()) -> ReliabilityView:
        now = ctx.clock()
        tr = parse_range(rp.range or DEFAULT_RANGE, rp.end, now)
        return run_view(lambda: reliability(ctx.query, tr, now))

    def continuity_view(job_id: str, rp: RangeParams = Depends()) -> JobContinuity:
        check_job_id(job_id)
        return run_view(lambda: job_continuity(ctx.query, rp.resolve(ctx.clock()), job_id))

    @router.get("/api/reliability", response_model=ReliabilityView)
    def reliability_json(model: ReliabilityView = Depends(reliability_view)) -> Response:
        return model_json(model)

    def pod_continuity_view(namespace: str, pod: str, rp: RangeParams = Depends()) -> JobContinuity:
        return continuity_view(f"{namespace}/{pod}", rp)

    @router.get("/api/jobs/{job_id:slurm_job_id}/continuity", response_model=JobContinuity)
    def continuity_json(model: JobContinuity = Depends(continuity_view)) -> Response:
        return model_json(model)

    @router.get("/api/jobs/{namespace}/{pod}/continuity", response_model=JobContinuity)
    def pod_continuity_json(model: JobContinuity = Depends(pod_continuity_view)) -> Response:
        return model_json(model)

    @router.get("/reliability", response_class=HTMLResponse, include_in_schema=False)
    def reliability_page(model: ReliabilityView = Depends(reliability_view)) -> HTMLResponse:
        return render_page("Reliability", "reliability", "/api/reliability", model)

    return router
