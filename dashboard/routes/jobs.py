"""``/jobs``, ``/jobs/{job_id}`` (a Slurm job), ``/jobs/{namespace}/{pod}`` (a Kubernetes pod) and
their JSON."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, Response

from dashboard.compress import GzipRoute
from dashboard.context import DashboardContext
from dashboard.pages import render_page
from dashboard.params import RangeParams, bad_request, check_job_id
from dashboard.routes.common import model_json, run_view
from dashboard.views.jobs import POD_ENDED, JobsView, JobView, job, jobs

STATES = {"RUNNING", "PENDING", "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "COMPLETING", "NODE_FAIL",
          "PREEMPTED", "OUT_OF_MEMORY", "SUSPENDED", POD_ENDED}


def build_router(ctx: DashboardContext) -> APIRouter:
    router = APIRouter(tags=["jobs"], route_class=GzipRoute)

    def list_view(rp: RangeParams = Depends(),
                  state: str | None = Query(None, description="comma-separated Slurm states")) -> JobsView:
        wanted = {s.strip().upper() for s in state.split(",") if s.strip()} if state else set()
        if wanted - STATES:
            raise bad_request(f"state: unknown {', '.join(sorted(wanted - STATES))} "
                              f"(one of {', '.join(sorted(STATES))})")
        return run_view(lambda: jobs(ctx, rp.resolve(ctx.clock()), wanted))

    def job_view(job_id: str, rp: RangeParams = Depends()) -> JobView:
        check_job_id(job_id)
        model = run_view(lambda: job(ctx, rp.resolve(ctx.clock()), job_id))
        model.automation = ctx.automation  # serve runs the remediation engine (its audit lists the job's cases)
        return model

    def pod_view(namespace: str, pod: str, rp: RangeParams = Depends()) -> JobView:
        return job_view(f"{namespace}/{pod}", rp)

    @router.get("/api/jobs", response_model=JobsView)
    def jobs_json(model: JobsView = Depends(list_view)) -> JobsView:
        return model

    @router.get("/api/jobs/{job_id}", response_model=JobView)
    def job_json(model: JobView = Depends(job_view)) -> Response:
        return model_json(model)

    @router.get("/api/jobs/{namespace}/{pod}", response_model=JobView)
    def pod_json(model: JobView = Depends(pod_view)) -> Response:
        return model_json(model)

    @router.get("/jobs", response_class=HTMLResponse, include_in_schema=False)
    def jobs_page(model: JobsView = Depends(list_view)) -> HTMLResponse:
        return render_page("Jobs", "jobs", "/api/jobs", model)

    @router.get("/jobs/{job_id}", response_class=HTMLResponse, include_in_schema=False)
    def job_page(model: JobView = Depends(job_view)) -> HTMLResponse:
        return _page(model)

    @router.get("/jobs/{namespace}/{pod}", response_class=HTMLResponse, include_in_schema=False)
    def pod_page(model: JobView = Depends(pod_view)) -> HTMLResponse:
        return _page(model)

    def _page(model: JobView) -> HTMLResponse:
        job = model.job
        title = f"Pod {job.job_id}" if job.pod else f"Job {job.job_id}"
        return render_page(title, "job", f"/api/jobs/{job.job_id}", model,
                           title if job.pod else f"{title} · {job.name}")

    return router
