"""HTML pages: sign-in + consent, admin consent, and the error page.

Elements carry stable ids (`username`, `accept`, `cancel`, `error`) for browser-driven tests.
"""

from __future__ import annotations

from html import escape

_STYLE = "body{font-family:sans-serif;max-width:32em;margin:3em auto}"


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{body}</body></html>")


def sign_in(action: str, flow: str, client_id: str, scopes: list[str], *, login_hint: str,
            error: str | None = None) -> str:
    items = "".join(f"<li>{escape(s)}</li>" for s in scopes)
    error_html = f"<p id='error' role='alert'>{escape(error)}</p>" if error else ""
    return _page("Sign in to your account", f"""
<h1>Sign in</h1>{error_html}
<form id="signin" method="post" action="{escape(action)}">
  <input type="hidden" name="flow" value="{escape(flow)}">
  <label for="username">Email</label>
  <input id="username" name="username" type="email" value="{escape(login_hint)}" required>
  <label for="password">Password</label>
  <input id="password" name="password" type="password">
  <h2>Permissions requested</h2>
  <p>App <code id="client">{escape(client_id)}</code> would like to:</p><ul>{items}</ul>
  <button id="accept" name="action" value="accept" type="submit">Accept</button>
  <button id="cancel" name="action" value="cancel" type="submit" formnovalidate>Cancel</button>
</form>""")


def admin_consent(action: str, flow: str, client_id: str, scope: str) -> str:
    return _page("Permissions requested", f"""
<h1>Permissions requested — accept for your organization</h1>
<form id="adminconsent" method="post" action="{escape(action)}">
  <input type="hidden" name="flow" value="{escape(flow)}">
  <label for="username">Administrator</label>
  <input id="username" name="username" type="email" required>
  <p>App <code id="client">{escape(client_id)}</code> asks for <code>{escape(scope)}</code>.</p>
  <button id="accept" name="action" value="accept" type="submit">Accept</button>
  <button id="cancel" name="action" value="cancel" type="submit" formnovalidate>Cancel</button>
</form>""")


def error(message: str) -> str:
    return _page("Sign in error", f"<h1>Sorry, but we're having trouble signing you in.</h1>"
                 f"<p id='error'>{escape(message)}</p>")


def form_post(redirect_uri: str, params: dict[str, str]) -> str:
    inputs = "".join(f"<input type='hidden' name='{escape(k)}' value='{escape(v)}'>"
                     for k, v in params.items())
    return _page("Working...", f"<form method='post' action='{escape(redirect_uri)}'>{inputs}"
                 "</form><script>document.forms[0].submit()</script>")
