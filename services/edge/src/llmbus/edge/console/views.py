"""The console's pages as HTML, from the documents the management API already serves.

Every value that comes from outside (provider and model names, key names, error
messages, upstream errors) goes through `escape`; the pages have no inline script or
style (the console's Content-Security-Policy forbids both), only `static/console.css`
and `static/console.js`."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

from llmbus.edge.console.charts import Point, daily_bars
from llmbus.proto import KeyInfo, UsageReport

__all__ = [
    "USAGE_METRICS",
    "error_page",
    "keys_page",
    "live_page",
    "login_page",
    "logins_page",
    "providers_page",
    "usage_page",
]

Document = Mapping[str, Any]

_NAV = (
    ("providers", "Providers"),
    ("keys", "Keys"),
    ("usage", "Usage"),
    ("live", "Live"),
    ("logins", "Logins"),
)

USAGE_METRICS = ("requests", "tokens", "errors")
_ACTIVE = ' class="active" aria-current="page"'


def _head(title: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · llmbus console</title>"
        '<link rel="stylesheet" href="/console/static/console.css">'
        '<script src="/console/static/console.js" defer></script></head>'
    )


def _layout(title: str, active: str, csrf: str, body: str, notice: str = "", error: str = "") -> str:
    links = "".join(
        f'<a href="/console/{page}"{_ACTIVE if page == active else ""}>{label}</a>' for page, label in _NAV
    )
    messages = ""
    if notice:
        messages += f'<p class="notice" role="status">{escape(notice)}</p>'
    if error:
        messages += f'<p class="error" role="alert">{escape(error)}</p>'
    return (
        f"{_head(title)}<body><header><strong>llmbus</strong><nav>{links}</nav>"
        '<form method="post" action="/console/logout" class="logout">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        '<button type="submit" class="quiet" id="logout">Log out</button></form></header>'
        f"<main><h1>{escape(title)}</h1>{messages}{body}</main></body></html>"
    )


def _path(segment: str) -> str:
    """A name as one segment of a form's action."""
    return escape(quote(segment, safe=""))


def _csrf_field(csrf: str) -> str:
    return f'<input type="hidden" name="csrf" value="{escape(csrf)}">'


def _when(at: float | None) -> str:
    if not at:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))


def login_page(error: str = "") -> str:
    message = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    return (
        f'{_head("Log in")}<body class="narrow"><main>'
        f"<h1>llmbus console</h1>{message}"
        '<form method="post" action="/console/login" id="login">'
        '<label>Management key <input type="password" name="key" id="key" autocomplete="off" '
        'required autofocus></label><button type="submit">Log in</button></form>'
        "<p><small>The key is the config file's <code>management-key</code>; it is checked once, and "
        "the session cookie never holds it.</small></p></main></body></html>"
    )


def error_page(status: int, message: str) -> str:
    return (
        f'{_head("Refused")}<body class="narrow"><main><h1>{status}</h1>'
        f'<p class="error" role="alert">{escape(message)}</p></main></body></html>'
    )


# --- providers ---------------------------------------------------------------------------


def _credentials(status: Document) -> str:
    items = []
    for credential in status.get("credentials", []):
        state = str(credential.get("state", ""))
        extra = ""
        if credential.get("account"):
            extra += f" {credential['account']}"
        if credential.get("health_reason"):
            extra += f" ({credential['health_reason']})"
        items.append(
            f"<li><code>{escape(str(credential.get('name', '')))}</code> "
            f'<span class="tag {escape(state)}">{escape(state.replace("_", " "))}</span>{escape(extra)}</li>'
        )
    return f'<ul class="plain">{"".join(items)}</ul>' if items else '<span class="muted">none</span>'


def _model_of(cooldown: Document) -> str:
    return f" · {escape(str(cooldown['model']))}" if cooldown.get("model") else ""


def _cooldowns(name: str, status: Document, csrf: str) -> str:
    cooldowns = status.get("cooldowns", [])
    if not cooldowns:
        return '<span class="muted">none</span>'
    rows = "".join(
        f"<li><code>{escape(str(c.get('credential', '')))}</code>"
        f"{_model_of(c)}: "
        f"{escape(str(c.get('remaining_s', '')))} s ({escape(str(c.get('reason', '')))})</li>"
        for c in cooldowns
    )
    return (
        f'<ul class="plain">{rows}</ul>'
        f'<form method="post" action="/console/providers/{_path(name)}/cooldowns">{_csrf_field(csrf)}'
        f'<button type="submit" class="small" data-action="reprobe">End cooldowns, re-probe</button></form>'
    )


def _health(status: Document) -> str:
    health = status.get("health")
    if health is None:
        return '<span class="muted">not checked</span>'
    if health.get("ok"):
        latency = health.get("latency_ms")
        return f'<span class="tag ready">ok</span> {escape(str(latency))} ms' if latency is not None else "ok"
    return f'<span class="tag bad">failing</span> {escape(str(health.get("error") or ""))}'


def _switch(name: str, enabled: bool, csrf: str) -> str:
    wanted = "false" if enabled else "true"
    label = "Switch off" if enabled else "Switch on"
    danger = " danger" if enabled else ""
    return (
        f'<form method="post" action="/console/providers/{_path(name)}/enabled">{_csrf_field(csrf)}'
        f'<input type="hidden" name="enabled" value="{wanted}">'
        f'<button type="submit" class="small{danger}" data-action="toggle">{label}</button>'
        "</form>"
    )


def providers_page(
    providers: Sequence[Document],
    statuses: Mapping[str, Document],
    csrf: str,
    *,
    notice: str = "",
    error: str = "",
) -> str:
    rows = []
    for provider in providers:
        name = str(provider["id"])
        status = statuses.get(name, {})
        enabled = bool(provider.get("enabled"))
        routable = bool(provider.get("routable"))
        reason = provider.get("reason")
        state = (
            '<span class="tag ready">routable</span>'
            if routable
            else f'<span class="tag bad">{escape(str(reason or "not routable"))}</span>'
        )
        error_rate = float(status.get("error_rate") or 0.0)
        rows.append(
            f'<tr id="provider-{escape(name)}" data-provider="{escape(name)}" '
            f'data-enabled="{str(enabled).lower()}">'
            f"<td><strong>{escape(name)}</strong><br><small>{escape(str(provider.get('type', '')))}"
            f" · {escape(str(provider.get('auth_type', '')))}</small></td>"
            f"<td>{state}</td>"
            f'<td class="switch">{"on" if enabled else "off"} {_switch(name, enabled, csrf)}</td>'
            f"<td>{_credentials(status)}</td>"
            f"<td>{_cooldowns(name, status, csrf)}</td>"
            f"<td>{_health(status)}</td>"
            f'<td class="num">{int(status.get("workers") or 0)}</td>'
            f'<td class="num">{int(status.get("in_flight") or 0)}</td>'
            f'<td class="num">{int(status.get("requests") or 0)}</td>'
            f'<td class="num">{error_rate:.1%}</td></tr>'
        )
    table = (
        '<table id="providers"><thead><tr><th>Provider</th><th>State</th><th>Switch</th>'
        '<th>Credentials</th><th>Cooldowns</th><th>Health</th><th class="num">Workers</th>'
        '<th class="num">In flight</th><th class="num">Requests</th><th class="num">Errors</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "<p><small>Requests and errors: the routers' recent window. Switching a provider off "
        "stops routing to it on every router at once.</small></p>"
    )
    return _layout("Providers", "providers", csrf, table, notice, error)


# --- keys --------------------------------------------------------------------------------


def _limits(info: KeyInfo) -> str:
    limits = info.limits
    parts = [
        f"{label} {value}"
        for label, value in (("rpm", limits.rpm), ("tpm", limits.tpm), ("max_tokens", limits.max_tokens))
        if value
    ]
    if limits.models:
        parts.append("models " + ", ".join(limits.models))
    return escape("; ".join(parts)) if parts else '<span class="muted">none</span>'


_CREATE_FORM = """
<details class="box" {open}><summary>Create a key</summary>
<form method="post" action="/console/keys" id="create-key" class="grid">{csrf}
<label>Name <input name="name" id="key-name" maxlength="200"></label>
<label>Owner <input name="owner" id="key-owner" maxlength="200"></label>
<label>Requests a minute <input name="rpm" id="key-rpm" type="number" min="0" value="0"></label>
<label>Tokens a minute <input name="tpm" id="key-tpm" type="number" min="0" value="0"></label>
<label>Largest max_tokens <input name="max_tokens" id="key-max-tokens" type="number" min="0"
  value="0"></label>
<label>Models (comma separated, <code>*</code> wildcards) <input name="models" id="key-models"></label>
<label>Expires in days (empty: never) <input name="expires_in_days" id="key-expires" type="number" min="0"
  step="any"></label>
<button type="submit" id="create">Create</button>
</form><p><small>0 or empty: no limit of the key's own.</small></p></details>
"""


def keys_page(
    keys: Sequence[KeyInfo],
    csrf: str,
    *,
    created: tuple[KeyInfo, str] | None = None,
    notice: str = "",
    error: str = "",
    now: float | None = None,
) -> str:
    now = time.time() if now is None else now
    shown = ""
    if created is not None:
        info, secret = created
        shown = (
            '<div class="box secret" id="new-key"><p>The new key '
            f"<strong>{escape(info.name or info.id)}</strong>; copy it now, it is not shown again:</p>"
            f'<p><code id="secret">{escape(secret)}</code></p></div>'
        )
    rows = []
    for info in keys:
        expired = bool(info.expires_at) and info.expires_at <= now
        state = "revoked" if info.revoked else "expired" if expired else "active"
        action = ""
        if not info.revoked and info.source == "api":
            action = (
                f'<form method="post" action="/console/keys/{_path(info.id)}/revoke">{_csrf_field(csrf)}'
                '<button type="submit" class="small danger" data-action="revoke">Revoke</button></form>'
            )
        elif info.source == "config":
            action = '<small class="muted">config file</small>'
        rows.append(
            f'<tr data-key="{escape(info.id)}" data-state="{state}"><td>{escape(info.name)}</td>'
            f"<td><code>{escape(info.id)}</code></td><td><code>{escape(info.prefix)}…</code></td>"
            f"<td>{escape(info.owner)}</td><td>{_limits(info)}</td>"
            f"<td>{_when(info.created_at)}</td><td>{_when(info.expires_at)}</td>"
            f'<td><span class="tag {state}">{state}</span></td><td>{action}</td></tr>'
        )
    table = (
        '<table id="keys"><thead><tr><th>Name</th><th>Id</th><th>Prefix</th><th>Owner</th><th>Limits</th>'
        "<th>Created</th><th>Expires</th><th>State</th><th></th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
    form = _CREATE_FORM.format(csrf=_csrf_field(csrf), open="open" if error else "")
    return _layout("Keys", "keys", csrf, shown + form + table, notice, error)


# --- usage -------------------------------------------------------------------------------

_DIMENSIONS = (("key", "Key"), ("provider", "Provider"), ("model", "Model"), ("credential", "Credential"))
_DAY_CHOICES = (1, 7, 14, 30, 90)


def _metric(row: Any, metric: str) -> int:
    if metric == "tokens":
        return int(row.input_tokens + row.output_tokens)
    return int(getattr(row, metric))


def usage_page(
    report: UsageReport | None,
    days: Sequence[str],
    metric: str,
    labels: Mapping[str, str],
    csrf: str,
    *,
    error: str = "",
) -> str:
    by = report.by if report is not None else "key"
    tabs = "".join(
        f'<a href="/console/usage?by={value}&amp;days={len(days)}&amp;metric={metric}"'
        f"{_ACTIVE if value == by else ''}>{label}</a>"
        for value, label in _DIMENSIONS
    )
    day_links = "".join(
        f'<a href="/console/usage?by={by}&amp;days={n}&amp;metric={metric}"'
        f"{_ACTIVE if n == len(days) else ''}>{n} d</a>"
        for n in _DAY_CHOICES
    )
    metric_links = "".join(
        f'<a href="/console/usage?by={by}&amp;days={len(days)}&amp;metric={m}"'
        f"{_ACTIVE if m == metric else ''}>{m}</a>"
        for m in USAGE_METRICS
    )
    controls = (
        f'<div class="tabs" id="usage-by">{tabs}</div><div class="tabs">{day_links}</div>'
        f'<div class="tabs">{metric_links}</div>'
    )
    if report is None:
        return _layout("Usage", "usage", csrf, controls, error=error)
    points = [Point(row.day, row.group, _metric(row, metric)) for row in report.rows]
    title = f"{metric} per day by {by}, last {len(days)} days (UTC)"
    chart = daily_bars(points, days, title, dict(labels))
    totals: dict[str, list[int]] = {}
    for row in report.rows:
        sums = totals.setdefault(row.group, [0, 0, 0, 0])
        sums[0] += row.requests
        sums[1] += row.errors
        sums[2] += row.input_tokens
        sums[3] += row.output_tokens
    rows = "".join(
        f'<tr data-group="{escape(group)}"><td>{escape(labels.get(group, group))}</td>'
        f'<td class="num requests">{s[0]}</td><td class="num">{s[1]}</td><td class="num">{s[2]}</td>'
        f'<td class="num">{s[3]}</td></tr>'
        for group, s in sorted(totals.items(), key=lambda item: -item[1][0])
    )
    table = (
        f'<table id="usage"><thead><tr><th>{escape(by.capitalize())}</th>'
        '<th class="num">Requests</th><th class="num">Errors</th>'
        '<th class="num">Input tokens</th><th class="num">Output tokens</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )
    body = f'{controls}<figure id="chart">{chart}</figure>{table}'
    return _layout("Usage", "usage", csrf, body, error=error)


# --- live and logins ---------------------------------------------------------------------


def live_page(csrf: str, key_names: Mapping[str, str]) -> str:
    """The live view's frame; the script fills its tables (keys named by `key_names`,
    the names known when the page was drawn)."""
    names = escape(json.dumps(dict(key_names)), quote=True)
    body = (
        '<p>Refreshed every second. <span id="live-status" class="muted">connecting…</span></p>'
        '<h2>Per provider (every worker)</h2><table id="live-providers" data-source="/console/live.json">'
        '<thead><tr><th>Provider</th><th class="num">In flight</th><th class="num">Workers</th>'
        '<th class="num">Requests</th><th class="num">Errors</th></tr></thead><tbody></tbody></table>'
        '<h2>Per client key (this edge process)</h2><p>In flight: <strong id="live-edge-total">0</strong></p>'
        f'<table id="live-keys" data-names="{names}"><thead><tr><th>Key</th><th class="num">In flight</th>'
        "</tr></thead><tbody></tbody></table>"
        "<h2>Requests in flight (this edge process, the longest running first)</h2>"
        '<table id="live-requests"><thead><tr><th>Request id</th><th>Key</th><th>Model</th><th>Provider</th>'
        '<th>Stream</th><th class="num">Seconds</th></tr></thead><tbody></tbody></table>'
    )
    return _layout("Live", "live", csrf, body)


_FAMILIES = (("copilot", "GitHub Copilot"), ("kiro", "Kiro (Amazon Q Developer)"))


def logins_page(csrf: str) -> str:
    items = "".join(
        f'<li><a href="/v0/oauth/{family}" target="_blank" rel="noopener noreferrer" id="login-{family}">'
        f"Sign in to {title}</a></li>"
        for family, title in _FAMILIES
    )
    body = (
        "<p>Device-flow logins add a credential to a provider of the family: the page shows a "
        "code to enter at the provider's site and waits until you have. It asks for the management "
        "key itself.</p>"
        f'<ul class="plain links">{items}</ul>'
        '<p>The credentials appear on the <a href="/console/providers">Providers</a> page once '
        "the login succeeds.</p>"
    )
    return _layout("Logins", "logins", csrf, body)
