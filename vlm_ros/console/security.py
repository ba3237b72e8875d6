"""Who may load the console and send commands: ROS-free, so the rules are tested on their own.

The page turns clicks into robot motion, so it is safe by default:

* It binds 127.0.0.1.  Then only this machine can reach it, and the ``Host`` header must name a
  loopback address (a DNS-rebinding page, served as evil.example but resolving to 127.0.0.1,
  sends ``Host: evil.example`` and is refused).
* Binding any other address requires a token (``--token``, or one generated and printed at start).
  Without it no page loads (401) and the websocket is refused (401), so no command is taken.
  The token is given once in the URL (``/?token=...``) and then kept in an HttpOnly,
  SameSite=Strict cookie.
* Every websocket handshake must carry an ``Origin`` equal to the served host: a page of another
  site open in the same browser cannot open the console's websocket (cross-site websocket
  hijacking), even on 127.0.0.1 where no token is asked for.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

COOKIE = "vlm_console_token"
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or a localhost name (brackets of an IPv6 literal allowed)."""
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_host(value: str) -> str:
    """The host name of a ``Host`` header value (``[::1]:8080`` -> ``::1``)."""
    value = value.strip()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value[1:]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def new_token() -> str:
    """A random token (128 bits, URL-safe)."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class Access:
    """The console's access rules for one bind address."""

    bind_host: str
    token: str | None = None  # None: no token asked for (only allowed on loopback)

    @classmethod
    def for_bind(cls, bind_host: str, token: str | None = None) -> Access:
        """Loopback: the given token or none.  Any other address: the given token or a new one."""
        if token is not None and not token.strip():
            raise ValueError("--token must not be empty")
        if token is None and not is_loopback(bind_host):
            token = new_token()
        return cls(bind_host, token)

    @property
    def loopback_only(self) -> bool:
        return is_loopback(self.bind_host)

    def token_ok(self, given: str | None) -> bool:
        """Is ``given`` the token (always true when none is asked for)?  Constant time."""
        if self.token is None:
            return True
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def host_ok(self, host_header: str | None) -> bool:
        """Bound to loopback, the request must name a loopback host (DNS rebinding)."""
        if not self.loopback_only:
            return True
        return bool(host_header) and is_loopback(split_host(host_header))

    @staticmethod
    def origin_ok(origin: str | None, host_header: str | None) -> bool:
        """A websocket's ``Origin`` must be this very server (scheme http/https, same host:port).
        A missing Origin (not a browser, or a browser hiding it) is refused too."""
        if not origin or not host_header or origin == "null":
            return False
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc.lower() == host_header.lower()
