"""The admin API's JSON bodies: reading one, and the 422 for one that does not validate."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse


async def read_json(request: Request) -> Any:
    """The body as JSON; None for a body that is not (validation then refuses it)."""
    try:
        return await request.json()
    except ValueError:
        return None


def invalid(exc: ValidationError) -> JSONResponse:
    errors = [
        {"field": ".".join(str(p) for p in e["loc"]), "error": e["msg"]} for e in exc.errors()
    ]
    return JSONResponse({"error": "invalid request", "details": errors}, status_code=422)
