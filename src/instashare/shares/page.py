"""A plain HTML page for browsers that open a share's link; every value is escaped."""

from __future__ import annotations

from html import escape

from instashare.shares.schemas import PublicShare

# Nothing on the page loads or runs anything; it only links to the downloads.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
}


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop returns at GiB


def render_page(share: PublicShare, token: str) -> str:
    title = escape(share.title or "Shared files")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="robots" content="noindex, nofollow">',
        f"<title>{title}</title>",
        "<style>body{font-family:sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}"
        "li{margin:.3rem 0}</style>",
        f"</head><body><main><h1>{title}</h1>",
    ]
    if share.message:
        parts.append(f"<p>{escape(share.message)}</p>")
    if share.expires_at is not None:
        parts.append(f"<p>Available until {escape(share.expires_at.isoformat())}.</p>")
    if share.password_required:
        parts.append("<p>These files are protected by a password.</p>")
    else:
        base = f"/s/{escape(token)}"
        parts.append("<ul>")
        for file in share.files:
            label = f"{escape(file.name)} ({escape(human_size(file.size))})"
            if file.status == "ready":
                parts.append(f'<li><a href="{base}/files/{file.id}" download>{label}</a></li>')
            else:
                parts.append(f"<li>{label}: {escape(file.status.value)}</li>")
        parts.append("</ul>")
        parts.append(f'<p><a href="{base}/download" download>Download all</a></p>')
    parts.append("</main></body></html>")
    return "\n".join(parts)
