"""The HTML pages people land on after Microsoft sends them back (Spanish by default)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

_env = Environment(
    loader=PackageLoader("services.auth", "templates"), autoescape=select_autoescape()
)

LANGS = ("es", "en")
_RELINKABLE = ("login_hint", "tenant")

TEXT = {
    "connected_title": {"es": "Buzón conectado", "en": "Mailbox connected"},
    "connected": {
        "es": "El buzón {address} quedó conectado a la Bandeja de Documentos."
        " Su correo no leído se importará en unos instantes.",
        "en": "The mailbox {address} is now connected to the document inbox."
        " Its unread mail will be imported shortly.",
    },
    "admin_done_title": {"es": "Consentimiento registrado", "en": "Consent recorded"},
    "admin_done": {
        "es": "La organización {tenant} autorizó la aplicación. Los usuarios ya pueden conectar"
        " sus buzones.",
        "en": "The organisation {tenant} approved the application. Users can now connect"
        " their mailboxes.",
    },
    "failed_title": {
        "es": "No se pudo conectar el buzón",
        "en": "The mailbox could not be connected",
    },
    "bad_state": {
        "es": "El enlace de inicio de sesión no es válido, ya se usó o caducó. Vuelva a empezar.",
        "en": "The sign-in link is invalid, was already used or has expired. Please start again.",
    },
    "bad_login_hint": {
        "es": "La dirección indicada no es un correo electrónico válido.",
        "en": "The address given is not a valid e-mail address.",
    },
    "other_browser": {
        "es": "Este inicio de sesión se empezó en otro navegador (o su navegador bloquea las"
        " cookies). Por seguridad no se conectó nada: abra el enlace de conexión en este"
        " navegador y vuelva a empezar.",
        "en": "This sign-in was started in another browser (or your browser blocks cookies)."
        " For your safety nothing was connected: open the connection link in this browser"
        " and start again.",
    },
    "bad_ticket": {
        "es": "El enlace de conexión no es válido, ya se usó o caducó."
        " Pida un enlace nuevo a quien se lo envió.",
        "en": "The connection link is invalid, was already used or has expired."
        " Ask whoever sent it for a new one.",
    },
    "ticket_required": {
        "es": "Los buzones se conectan solo con el enlace personal que le envía su proveedor."
        " Pida ese enlace y ábralo.",
        "en": "Mailboxes are connected only through the personal link your provider sends."
        " Ask for that link and open it.",
    },
    "mailbox_disconnected": {
        "es": "Un administrador desconectó este buzón. Solo puede volver a conectarse con un"
        " enlace nuevo: pídalo a su proveedor.",
        "en": "An administrator disconnected this mailbox. It can only be connected again"
        " with a new link: ask your provider for one.",
    },
    "account_mismatch": {
        "es": "Este buzón ya está conectado con otra cuenta de Microsoft. No se cambió nada;"
        " el operador fue avisado. Si la dirección cambió de titular, pida ayuda a su"
        " proveedor.",
        "en": "This mailbox is already connected with another Microsoft account. Nothing was"
        " changed; the operator has been notified. If the address changed hands, ask your"
        " provider for help.",
    },
    "tenant_not_allowed": {
        "es": "Las cuentas de su organización no pueden conectarse a este servicio."
        " Contacte con su proveedor.",
        "en": "Accounts of your organisation cannot be connected to this service."
        " Contact your provider.",
    },
    "admin_hint": {
        "es": "Reenvíe este enlace a un administrador de su organización:",
        "en": "Forward this link to an administrator of your organisation:",
    },
    "retry": {"es": "Intentar de nuevo", "en": "Try again"},
    "data_link": {
        "es": "Qué datos lee y guarda la Bandeja, y cómo retirar el acceso",
        "en": "What data the document inbox reads and keeps, and how to take access back",
    },
}


def pick_lang(request: Request, stored: str | None = None) -> str:
    asked = request.query_params.get("lang") or stored
    if asked in LANGS:
        return asked
    accept = request.headers.get("accept-language", "")
    return "en" if accept.lower().startswith("en") else "es"


def text(key: str, lang: str, **values: Any) -> str:
    return TEXT[key][lang].format(**values)


def render(
    request: Request,
    *,
    lang: str,
    ok: bool,
    outcome: str,
    title: str,
    message: str,
    status_code: int = 200,
    **extra: Any,
) -> HTMLResponse:
    other = "en" if lang == "es" else "es"
    # Only harmless parameters survive into the language link: a callback's query can
    # carry codes, tokens or attacker-chosen text that must never be reflected.
    query = {k: v for k, v in request.query_params.items() if k in _RELINKABLE}
    html = _env.get_template("page.html").render(
        lang=lang,
        ok=ok,
        outcome=outcome,
        title=title,
        message=message,
        admin_hint=text("admin_hint", lang),
        retry_label=text("retry", lang),
        other_lang_query=urlencode({**query, "lang": other}),
        other_lang_label="English" if other == "en" else "Español",
        # Every connect result and error page links to the data page (data_routes.py).
        data_url=f"{request.scope.get('root_path', '')}/data?lang={lang}",
        data_label=text("data_link", lang),
        **extra,
    )
    return HTMLResponse(html, status_code=status_code)


def refusal(
    request: Request, lang: str, outcome: str, retry_url: str | None = None
) -> HTMLResponse:
    """A 400 page for a request we refuse outright (bad state, bad address)."""
    return render(
        request,
        lang=lang,
        ok=False,
        outcome=outcome,
        status_code=400,
        title=text("failed_title", lang),
        message=text(outcome, lang),
        retry_url=retry_url,
    )
