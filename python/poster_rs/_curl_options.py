"""curl's habits for ``poster-rs post``, each a small function the command plugs in:
``-F name=@-`` / ``-F name=<-`` (standard input), ``-u user:password``, ``-x PROXY``,
``-o FILE``, ``--retry N`` and ``--limit-rate``.
"""

from __future__ import annotations

import base64
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar

from ._ship_transport import is_network_error
from ._throttle import RateLimiter, ThrottledBody
from .encode import MultipartParam

__all__ = [
    "RETRY_STATUSES",
    "basic_authorization",
    "open_with_retries",
    "proxy_handler",
    "stdin_param",
    "throttled",
    "write_output",
]

#: As curl's ``--retry``: timeouts, rate limits and server-side failures.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

_T = TypeVar("_T")


def stdin_param(name: str, as_file: bool, stdin: BinaryIO | None = None) -> MultipartParam:
    """``-F name=@-``: a file part streamed from standard input (``filename="-"``, as curl
    names it), of unknown size unless stdin is a regular file, so the body goes out chunked.
    ``-F name=<-``: a text field whose value is all of standard input."""
    source = stdin if stdin is not None else sys.stdin.buffer
    if as_file:
        return MultipartParam(name, filename="-", fileobj=source)
    return MultipartParam(name, source.read().decode("utf-8", "surrogateescape"))


def basic_authorization(credentials: str) -> str:
    """``-u user:password`` as an ``Authorization`` header value (HTTP Basic, UTF-8)."""
    user, colon, password = credentials.partition(":")
    if not colon:
        raise ValueError("-u: expected user:password (poster-rs does not prompt)")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def proxy_handler(proxy: str) -> urllib.request.ProxyHandler:
    """``-x [http://][user:password@]host[:port]``: every request through that HTTP proxy
    (HTTPS in a CONNECT tunnel), instead of the environment's proxies."""
    url = proxy if "://" in proxy else f"http://{proxy}"
    if not url.startswith("http://"):
        raise ValueError(f"-x {proxy!r}: only http:// proxies are supported")
    return urllib.request.ProxyHandler({"http": url, "https": url})


def throttled(stream: Any, rate: int | None) -> Any:
    """``--limit-rate SIZE``: the body paced at ``rate`` bytes per second (unchanged if None)."""
    return stream if rate is None else ThrottledBody(stream, RateLimiter(rate))


def write_output(body: bytes, path: str | None, *, newline: bool = True) -> None:
    """The response body to ``-o FILE`` (``-`` or None: standard output, ended with a newline
    unless ``newline`` is false)."""
    if path is None or path == "-":
        sys.stdout.buffer.write(body)
        if newline and body and not body.endswith(b"\n"):
            sys.stdout.buffer.write(b"\n")
        sys.stdout.flush()
        return
    with open(os.path.expanduser(path), "wb") as f:
        f.write(body)


def _transient(exc: BaseException) -> bool:
    """A failure worth another try: HTTP 408/429/5xx, or the network's (never a local file's:
    missing, unreadable, changed while it was sent)."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in RETRY_STATUSES
    if isinstance(exc, urllib.error.URLError):
        return isinstance(exc.reason, BaseException) and is_network_error(exc.reason)
    return is_network_error(exc)


def open_with_retries(
    attempt: Callable[[], _T],
    retries: int,
    rewind: Callable[[], bool],
    *,
    first_delay: float = 1.0,
    max_delay: float = 600.0,
    sleep: Callable[[float], object] = time.sleep,
    warn: Callable[[str], object] | None = None,
) -> _T:
    """``--retry N``: runs ``attempt()`` up to ``retries`` more times on a transient failure
    (a connection error, a timeout, HTTP 408/429/5xx), waiting 1 s, then twice as long each
    time, as curl does. ``rewind()`` puts the body back at its start and says whether it could
    (a body read from a pipe cannot be sent twice: the failure is final then)."""
    delay = first_delay
    for tries_left in range(retries, -1, -1):
        try:
            return attempt()
        except (urllib.error.URLError, OSError) as exc:
            if tries_left == 0 or not _transient(exc) or not rewind():
                raise
            if isinstance(exc, urllib.error.HTTPError):
                exc.close()
            if warn is not None:
                warn(f"transient failure ({exc}); retrying in {delay:g} s, {tries_left} left")
            sleep(delay)
            delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
