"""What the demo server sends with every response, and which `Host` names it answers.

A server on localhost is reachable from any page the user's browser opens: DNS
rebinding points an attacker's name at 127.0.0.1, so the server answers only the
`Host` names it is bound to (`allowed_hosts`, checked by Starlette's
`TrustedHostMiddleware`). Every response carries `SecurityHeaders`: no MIME sniffing,
no framing, no referrer, and a Content-Security-Policy that allows the page's own
inline script and style (by their SHA-256) and nothing from elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The names of the loopback interface a browser may send as `Host`.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
#: `--host` values that bind every interface: any `Host` is answered.
ALL_INTERFACES = frozenset({"", "0.0.0.0", "::"})


def allowed_hosts(host: str) -> list[str] | None:
    """The `Host` names a server bound to `host` answers: the loopback names and
    `host` itself (an IPv6 address in brackets, as browsers send it); None (any)
    when it is bound to every interface, where the names it is reached by are not
    known."""
    if host in ALL_INTERFACES:
        return None
    try:
        shown = f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:  # a name, not an address
        shown = host
    return list(dict.fromkeys([*LOOPBACK_HOSTS, shown.lower()]))


def _hashes(page: str, tag: str) -> str:
    """The CSP sources of the page's inline `<tag>` blocks: their SHA-256."""
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.DOTALL)
    return " ".join(
        "'sha256-"
        + base64.b64encode(hashlib.sha256(block.encode("utf-8")).digest()).decode()
        + "'"
        for block in blocks
    )


def content_security_policy(page: str) -> str:
    """The policy of the demo page: its own inline script and style, requests to
    this server only, images from it or `data:`/`blob:` URLs (the landmark strip),
    no framing, no forms posted elsewhere."""
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {_hashes(page, 'script')}",
            f"style-src {_hashes(page, 'style')}",
            "img-src 'self' data: blob:",
            "media-src 'self' blob:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def security_headers(page: str) -> dict[str, str]:
    """The headers every response of the demo server carries."""
    return {
        "Content-Security-Policy": content_security_policy(page),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
    }


class SecurityHeaders:
    """ASGI middleware: `headers` set on every HTTP response.

    Args:
        app: the application.
        headers: header name -> value (`security_headers`).
    """

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
