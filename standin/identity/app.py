"""Assemble the Starlette application."""

from __future__ import annotations

from starlette.applications import Starlette

from standin.identity import control_routes, oauth_routes
from standin.identity.state import State
from standin.identity.tokens import Signer


def create_app(base_url: str) -> Starlette:
    app = Starlette(routes=[*control_routes.routes, *oauth_routes.routes])
    app.state.directory = State()
    app.state.signer = Signer()
    app.state.base_url = base_url.rstrip("/")
    return app
