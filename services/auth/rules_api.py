"""The admin API's mail rules (common/rules.py; docs/openapi.yaml):

- ``GET /api/mailboxes/{id}/rules``: the mailbox's own rules, its tenant's, and the
  built-in default, in the order they are tried
- ``PUT /api/mailboxes/{id}/rules``: replace the mailbox's own rules (the order given)
- ``GET``/``PUT /api/tenants/{tenant_id}/rules``: the tenant-wide rules, tried after a
  mailbox's own
- ``GET /api/mailboxes/{id}/skipped``: the latest mails its rules skipped

A rule that does not validate is a 422 naming the field; nothing of the list is stored.
The fetcher reads the rules at every run: a change applies to the next run.
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from common.rules import DEFAULT_RULE, RuleSpec
from services.auth.admin_api import TENANT_PATTERN
from services.auth.admin_credential import require_admin
from services.auth.context import AuthContext
from services.auth.json_api import invalid, read_json
from services.auth.store import rules as rules_store

log = structlog.get_logger(__name__)

MAX_RULES = 100
SKIPPED_PAGE = 100


class RuleList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[RuleSpec] = Field(max_length=MAX_RULES)


def routes(ctx: AuthContext) -> list[Route]:
    def denied(request: Request) -> Response | None:
        return require_admin(ctx.settings, request)

    def get_mailbox_rules(request: Request) -> Response:
        return denied(request) or mailbox_rules(ctx, int(request.path_params["mailbox_id"]))

    async def put_mailbox_rules(request: Request) -> Response:
        if refused := denied(request):
            return refused
        mailbox_id = int(request.path_params["mailbox_id"])
        body = await read_json(request)
        return await run_in_threadpool(replace_mailbox_rules, ctx, mailbox_id, body)

    def get_tenant_rules(request: Request) -> Response:
        return denied(request) or tenant_rules(ctx, request.path_params["tenant_id"])

    async def put_tenant_rules(request: Request) -> Response:
        if refused := denied(request):
            return refused
        tenant_id = request.path_params["tenant_id"]
        body = await read_json(request)
        return await run_in_threadpool(replace_tenant_rules, ctx, tenant_id, body)

    def get_skipped(request: Request) -> Response:
        return denied(request) or skipped(ctx, int(request.path_params["mailbox_id"]))

    mailbox_path = "/api/mailboxes/{mailbox_id:int}"
    return [
        Route(f"{mailbox_path}/rules", get_mailbox_rules, methods=["GET"]),
        Route(f"{mailbox_path}/rules", put_mailbox_rules, methods=["PUT"]),
        Route(f"{mailbox_path}/skipped", get_skipped, methods=["GET"]),
        Route("/api/tenants/{tenant_id}/rules", get_tenant_rules, methods=["GET"]),
        Route("/api/tenants/{tenant_id}/rules", put_tenant_rules, methods=["PUT"]),
    ]


def _not_found(what: str) -> JSONResponse:
    return JSONResponse({"error": f"no such {what}"}, status_code=404)


def mailbox_rules(ctx: AuthContext, mailbox_id: int) -> Response:
    with ctx.pool.connection() as conn:
        tenant_id = rules_store.mailbox_tenant(conn, mailbox_id)
        if tenant_id is None:
            return _not_found("mailbox")
        own = rules_store.list_rules(conn, tenant_id=tenant_id, mailbox_id=mailbox_id)
        tenant = rules_store.list_rules(conn, tenant_id=tenant_id, mailbox_id=None)
    return JSONResponse(
        {
            "mailbox_id": mailbox_id,
            "tenant_id": tenant_id,
            "rules": own,
            "tenant_rules": tenant,
            "default": DEFAULT_RULE.spec.model_dump(mode="json"),
        }
    )


def tenant_rules(ctx: AuthContext, tenant_id: str) -> Response:
    if not _valid_tenant(tenant_id):
        return _not_found("tenant")
    with ctx.pool.connection() as conn:
        rules = rules_store.list_rules(conn, tenant_id=tenant_id, mailbox_id=None)
    return JSONResponse({"tenant_id": tenant_id, "rules": rules})


def replace_mailbox_rules(ctx: AuthContext, mailbox_id: int, body: Any) -> Response:
    try:
        wanted = RuleList.model_validate(body)
    except ValidationError as exc:
        return invalid(exc)
    with ctx.pool.connection() as conn, conn.transaction():
        # The row lock orders concurrent replacements of the same list.
        tenant_row = conn.execute(
            "SELECT tenant_id FROM mailboxes WHERE id = %s FOR UPDATE", (mailbox_id,)
        ).fetchone()
        if tenant_row is None:
            return _not_found("mailbox")
        tenant_id = str(tenant_row["tenant_id"])
        rules_store.replace_rules(
            conn, tenant_id=tenant_id, mailbox_id=mailbox_id, rules=wanted.rules
        )
        stored = rules_store.list_rules(conn, tenant_id=tenant_id, mailbox_id=mailbox_id)
    log.info("mail_rules_replaced", mailbox_id=mailbox_id, rules=len(stored))
    return JSONResponse({"mailbox_id": mailbox_id, "tenant_id": tenant_id, "rules": stored})


def replace_tenant_rules(ctx: AuthContext, tenant_id: str, body: Any) -> Response:
    if not _valid_tenant(tenant_id):
        return _not_found("tenant")
    try:
        wanted = RuleList.model_validate(body)
    except ValidationError as exc:
        return invalid(exc)
    with ctx.pool.connection() as conn, conn.transaction():
        # Serialises concurrent replacements of one tenant's list (no row to lock).
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('mail_rules:' || %s))", (tenant_id,))
        rules_store.replace_rules(conn, tenant_id=tenant_id, mailbox_id=None, rules=wanted.rules)
        stored = rules_store.list_rules(conn, tenant_id=tenant_id, mailbox_id=None)
    log.info("tenant_mail_rules_replaced", tenant_id=tenant_id, rules=len(stored))
    return JSONResponse({"tenant_id": tenant_id, "rules": stored})


def skipped(ctx: AuthContext, mailbox_id: int) -> Response:
    with ctx.pool.connection() as conn:
        if rules_store.mailbox_tenant(conn, mailbox_id) is None:
            return _not_found("mailbox")
        rows = rules_store.skipped_mails(conn, mailbox_id, SKIPPED_PAGE)
    return JSONResponse({"mailbox_id": mailbox_id, "skipped": rows})


def _valid_tenant(tenant_id: str) -> bool:
    return re.fullmatch(TENANT_PATTERN, tenant_id) is not None
