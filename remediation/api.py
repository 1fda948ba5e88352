"""The automation JSON API (the dashboard's automation log reads it):

    GET  /api/automation/cases                cases, newest first, with their steps
    GET  /api/automation/audit                every decision: time, alert, node, job, action, mode, actor, result
    POST /api/automation/cases/{id}/approve   run a proposed case (operator)
    POST /api/automation/cases/{id}/reject    close a proposed case without action (operator)
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import BaseModel

from remediation.engine import CaseError, RemediationEngine
from remediation.store import Case
from cwkernel.auth import Operator, require_operator


# Case ids are SQLite integers: a larger number is a 422, not an OverflowError deep in the store.
MAX_CASE_ID = 2**63 - 1
CaseId = Path(ge=1, le=MAX_CASE_ID, description="case id")


class StepOut(BaseModel):
    name: str
    status: str
    started_at: float
    ended_at: float | None
    actor: str
    detail: str


class CaseOut(BaseModel):
    id: int
    alert_class: str
    alertname: str
    node: str | None
    gpu: str | None
    job_id: str | None
    mode: str
    state: str
    current_step: str | None
    ladder: list[str]
    alert_active: bool
    owned: bool
    lemon: bool
    approved_by: str | None
    detail: str
    created_at: float
    updated_at: float
    closed_at: float | None
    evidence: dict | None
    steps: list[StepOut]


class AuditOut(BaseModel):
    id: int | None
    time: float
    case_id: int | None
    alert: str
    node: str | None
    job_id: str | None
    action: str
    mode: str
    actor: str
    result: str
    detail: str


class BudgetOut(BaseModel):
    drained: int
    remaining: int
    detail: str


class CasesOut(BaseModel):
    mode: str
    budget: BudgetOut | None
    cases: list[CaseOut]


def _case_out(engine: RemediationEngine, case: Case) -> CaseOut:
    return CaseOut(
        id=case.id, alert_class=case.alert_class, alertname=case.alertname, node=case.node, gpu=case.gpu,
        job_id=case.job_id, mode=case.mode, state=case.state, current_step=case.current_step,
        ladder=list(case.ladder), alert_active=case.alert_active, owned=case.owned, lemon=case.lemon,
        approved_by=case.approved_by, detail=case.detail, created_at=case.created_at, updated_at=case.updated_at,
        closed_at=case.closed_at, evidence=case.evidence,
        steps=[StepOut(name=s.name, status=s.status, started_at=s.started_at, ended_at=s.ended_at, actor=s.actor,
                       detail=s.detail) for s in engine.store.steps(case.id)])


def build_router(engine: RemediationEngine) -> APIRouter:
    router = APIRouter(prefix="/api/automation", tags=["automation"])

    @router.get("/cases", response_model=CasesOut)
    def cases(state: str | None = None, limit: int = Query(200, ge=1, le=2000)) -> CasesOut:
        budget = engine.budget()
        return CasesOut(mode=engine.mode, budget=BudgetOut(**budget.__dict__) if budget else None,
                        cases=[_case_out(engine, c) for c in engine.store.cases(state, limit)])

    @router.get("/audit", response_model=list[AuditOut])
    def audit(since: float | None = Query(None, allow_inf_nan=False, description="Unix time"),
              case_id: int | None = Query(None, ge=1, le=MAX_CASE_ID),
              limit: int = Query(500, ge=1, le=5000)) -> list[AuditOut]:
        return [AuditOut(**e.__dict__) for e in engine.store.audit_entries(since, case_id, limit)]

    def decide(case_id: int, operator: Operator, approve: bool) -> CaseOut:
        try:
            case = engine.approve(case_id, operator.name) if approve else engine.reject(case_id, operator.name)
        except CaseError as exc:
            code = status.HTTP_404_NOT_FOUND if "no case" in str(exc) else status.HTTP_409_CONFLICT
            raise HTTPException(code, str(exc)) from None
        return _case_out(engine, case)

    @router.post("/cases/{case_id}/approve", response_model=CaseOut)
    def approve(case_id: int = CaseId, operator: Operator = Depends(require_operator)) -> CaseOut:
        return decide(case_id, operator, approve=True)

    @router.post("/cases/{case_id}/reject", response_model=CaseOut)
    def reject(case_id: int = CaseId, operator: Operator = Depends(require_operator)) -> CaseOut:
        return decide(case_id, operator, approve=False)

    return router
