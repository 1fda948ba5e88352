"""Users page: GPU-hours used and wasted (allocated but idle) per user and account over a period.

Both come from one subquery each, sampled at a fixed step so that the sum is a time integral
whatever the scrape interval of the store (embedded or Prometheus) is: each step a GPU holds a
job counts step/3600 GPU-hours, and counts as wasted when its utilisation was below 1%.
"""
from __future__ import annotations

from pydantic import BaseModel

from dashboard.context import DashboardContext
from dashboard.definitions import idle_gpus
from dashboard.params import TimeRange, is_pod_job_id
from dashboard.promql import by_label
from dashboard.views.jobs import job_records


class UsageRow(BaseModel):
    user: str
    account: str
    jobs: int
    gpu_hours: float
    gpu_hours_wasted: float
    wasted_ratio: float | None


class UsersView(BaseModel):
    time: float
    start: float
    end: float
    step_seconds: float
    users: list[UsageRow]


def users(ctx: DashboardContext, tr: TimeRange) -> UsersView:
    client, at, w = ctx.query, tr.end, tr.window
    step = int(max(60, tr.seconds // 360))
    held = f"max by (job_id) (sum_over_time(count by (job_id) (gpu_job_info)[{w}:{step}s]))"
    # ``and``, not a group_left join: a GPU shared by several jobs (Kubernetes time-slicing) has a
    # gpu_job_info series each, which a join refuses as duplicates; each job is billed its idle GPU.
    idle = (f"max by (job_id) (sum_over_time(count by (job_id) (gpu_job_info and on (instance, gpu)"
            f" ({idle_gpus()}))[{w}:{step}s]))")
    used_steps = by_label(client.instant(held, at), "job_id")
    idle_steps = by_label(client.instant(idle, at), "job_id")
    owners = {j.job_id: (j.user, j.account) for j in job_records(ctx, at, w)}
    # Jobs that finished and left the scheduler's list: their slurm_job_info is still in the store.
    for s in client.instant(f"last_over_time(slurm_job_info[{w}])", at).series:
        owners.setdefault(s.labels.get("job_id", ""), (s.labels.get("user", ""), s.labels.get("account", "")))
    rows: dict[tuple[str, str], UsageRow] = {}
    for job_id, steps in used_steps.items():
        user, account = owners.get(job_id) or _unknown_owner(job_id)
        row = rows.setdefault((user, account), UsageRow(user=user, account=account, jobs=0, gpu_hours=0.0,
                                                        gpu_hours_wasted=0.0, wasted_ratio=None))
        row.jobs += 1
        row.gpu_hours += steps * step / 3600
        row.gpu_hours_wasted += idle_steps.get(job_id, 0.0) * step / 3600
    for row in rows.values():
        row.gpu_hours, row.gpu_hours_wasted = round(row.gpu_hours, 3), round(row.gpu_hours_wasted, 3)
        row.wasted_ratio = round(row.gpu_hours_wasted / row.gpu_hours, 4) if row.gpu_hours else None
    return UsersView(time=ctx.clock(), start=tr.start, end=tr.end, step_seconds=step,
                     users=sorted(rows.values(), key=lambda r: -r.gpu_hours))


def _unknown_owner(job_id: str) -> tuple[str, str]:
    """No scheduler record: a Kubernetes pod is its namespace's (the account a cluster bills), with
    no user; anything else nobody's."""
    return ("(unknown)", job_id.partition("/")[0]) if is_pod_job_id(job_id) else ("(unknown)", "")
