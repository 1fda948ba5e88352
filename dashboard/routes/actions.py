"""Operator actions: ``POST /api/nodes/{name}/drain`` and ``/resume``.

Only POST, only with operator credentials in the Authorization header (``require_operator``), only
with a JSON body (a cross-site form cannot send one without a CORS preflight), and only through the
scheduler adapter's action API, which validates the node against the last poll, cleans the reason,
audits the call with the operator's name as actor and runs an argument vector (no shell). The
scheduler refusing to resume a node its last poll lists in service is the operator's mistake (409,
nothing to resume), not the scheduler failing (502).
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from cwkernel.auth import Operator, require_operator
from dashboard.context import DashboardContext
from dashboard.params import check_node
from scheduler.errors import ActionRefused
from scheduler.model import Node


class ActionRequest(BaseModel):
    reason: str = Field("", max_length=256, description="why (required to drain); shown in Slurm's node reason")


class ActionResponse(BaseModel):
    action: str
    node: str
    ok: bool
    message: str
    actor: str
    reason: str


def require_json(request: Request) -> None:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise HTTPException(415, "send the action as application/json")


def _listed(ctx: DashboardContext, name: str) -> Node | None:
    """The node as the scheduler's last poll listed it (never polls)."""
    snapshot = ctx.scheduler.snapshot() if ctx.scheduler is not None else None
    return snapshot.node(name) if snapshot is not None else None


def build_router(ctx: DashboardContext) -> APIRouter:
    router = APIRouter(tags=["actions"], dependencies=[Depends(require_json)])

    def act(kind: str, name: str, body: ActionRequest, operator: Operator) -> ActionResponse:
        check_node(name)
        if ctx.scheduler is None:
            raise HTTPException(503, "no scheduler adapter configured (serve --scheduler ...)")
        actor = f"dashboard:{operator.name}"
        try:
            if kind == "drain":
                result = ctx.scheduler.actions.drain(name, body.reason, actor)
            else:
                result = ctx.scheduler.actions.resume(name, actor, body.reason)
        except ActionRefused as exc:
            raise HTTPException(400, f"{kind} refused: {exc}") from None
        if not result.ok:
            if kind == "resume" and (node := _listed(ctx, name)) is not None and not node.resumable:
                state = "+".join((node.state, *node.state_flags))
                raise HTTPException(409, f"{name} has nothing to resume: the scheduler lists it as {state}, neither "
                                         f"drained nor down ({result.message})")
            raise HTTPException(502, f"the scheduler did not {kind} {name}: {result.message}")
        return ActionResponse(action=kind, node=result.target, ok=True, message=result.message,
                              actor=result.actor, reason=result.reason)

    @router.post("/api/nodes/{name}/drain", response_model=ActionResponse)
    def drain(name: str, body: ActionRequest, operator: Operator = Depends(require_operator)) -> ActionResponse:
        return act("drain", name, body, operator)

    @router.post("/api/nodes/{name}/resume", response_model=ActionResponse)
    def resume(name: str, body: ActionRequest, operator: Operator = Depends(require_operator)) -> ActionResponse:
        return act("resume", name, body, operator)

    return router
