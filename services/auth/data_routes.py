"""What Bandeja holds about a mailbox: the public data page (``GET /data``) and the
admin's erasure route (``POST /api/mailboxes/{id}/purge``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from common.settings import Settings
from services.auth.admin_credential import require_admin
from services.auth.context import AuthContext
from services.auth.pages import pick_lang
from services.lifecycle.purge import purge_mailbox

_env = Environment(
    loader=PackageLoader("services.auth", "templates"), autoescape=select_autoescape()
)

# Where Microsoft documents the two ways to take access back.
MY_APPS_URL = "https://myapps.microsoft.com"
MY_APPS_HELP = {
    "es": "https://support.microsoft.com/es-es/account-billing/edit-or-revoke-application-permissions-in-the-my-apps-portal-169be2b4-ee26-4338-aea8-d19bb2f329ee",
    "en": "https://support.microsoft.com/en-us/account-billing/edit-or-revoke-application-permissions-in-the-my-apps-portal-169be2b4-ee26-4338-aea8-d19bb2f329ee",
}
ENTRA_ADMIN_URL = "https://entra.microsoft.com"
ENTRA_HELP = {
    "es": "https://learn.microsoft.com/es-es/entra/identity/enterprise-apps/manage-application-permissions",
    "en": "https://learn.microsoft.com/en-us/entra/identity/enterprise-apps/manage-application-permissions",
}


def routes(ctx: AuthContext) -> list[Route]:
    def data_page(request: Request) -> Response:
        return render_data_page(ctx.settings, request)

    async def api_purge(request: Request) -> Response:
        if denied := require_admin(ctx.settings, request):
            return denied
        return await run_in_threadpool(purge, ctx, int(request.path_params["mailbox_id"]))

    return [
        Route("/data", data_page, methods=["GET"]),
        Route("/api/mailboxes/{mailbox_id:int}/purge", api_purge, methods=["POST"]),
    ]


def purge(ctx: AuthContext, mailbox_id: int) -> Response:
    with ctx.pool.connection() as conn:
        purged = purge_mailbox(conn, mailbox_id=mailbox_id)
    if purged is None:
        return JSONResponse({"error": "no such mailbox"}, status_code=404)
    return JSONResponse({"purged": True, **purged.as_json()})


def retention_words(days: float, lang: str) -> str:
    """The retention setting as a person reads it: "30 días", "1 day", "12 hours"."""
    if 0 < days < 1:
        hours = round(days * 24, 1)
        count = int(hours) if hours == int(hours) else hours
        unit = {"es": ("hora", "horas"), "en": ("hour", "hours")}[lang]
    else:
        rounded = round(days, 1)
        count = int(rounded) if rounded == int(rounded) else rounded
        unit = {"es": ("día", "días"), "en": ("day", "days")}[lang]
    return f"{count} {unit[0] if count == 1 else unit[1]}"


def render_data_page(settings: Settings, request: Request) -> HTMLResponse:
    lang = pick_lang(request)
    other = "en" if lang == "es" else "es"
    contact = settings.data_contact.strip()
    values: dict[str, Any] = {
        "lang": lang,
        "retention": retention_words(settings.raw_retention_days, lang),
        "retention_days": settings.raw_retention_days,
        "contact": contact,
        "contact_href": contact if "://" in contact else f"mailto:{contact}" if contact else "",
        "my_apps_url": MY_APPS_URL,
        "my_apps_help": MY_APPS_HELP[lang],
        "entra_admin_url": ENTRA_ADMIN_URL,
        "entra_help": ENTRA_HELP[lang],
        "other_lang_query": urlencode({"lang": other}),
        "other_lang_label": "English" if other == "en" else "Español",
    }
    html = _env.get_template("data.html").render(**values)
    return HTMLResponse(html)
