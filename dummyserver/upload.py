"""``RecordingUploadServer``: ``poster-rs serve`` plus injected faults and a request log."""

from __future__ import annotations

import random
import socket
import struct
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from poster_rs.server import UploadServer

__all__ = ["FaultPlan", "RecordingUploadServer"]

#: The fault drawn for a request, kept with it between ``handle_upload`` and ``body_chunks``.
_FAULT = web.RequestKey("fault", str)


@dataclass
class FaultPlan:
    """Failures injected on purpose, for testing clients' retries: each request fails with
    probability ``rate``, as one of ``kinds`` (``"503"``, ``"429"`` with ``Retry-After``,
    ``"reset"``: a TCP reset once half the body has arrived)."""

    rate: float = 0.0
    kinds: tuple[str, ...] = ("503", "429", "reset")
    retry_after: int = 1
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def draw(self) -> str | None:
        with self._lock:
            if self.rate <= 0 or self._rng.random() >= self.rate:
                return None
            return self._rng.choice(self.kinds)


def _early(status: int, error: str, **headers: str) -> web.Response:
    """An answer sent before reading the body; the connection closes after it."""
    response = web.json_response({"error": error}, status=status, headers=headers)
    response.force_close()
    return response


class RecordingUploadServer(UploadServer):
    """``UploadServer`` that keeps every answered upload in ``received`` (``path``, ``bytes``,
    ``parts``) and fails requests as ``faults`` says."""

    def __init__(self, *args: Any, faults: FaultPlan | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.faults = faults
        self.received: list[dict[str, Any]] = []
        self._record_lock = threading.Lock()

    def record(self, path: str, parts: list[dict[str, Any]], size: int) -> None:
        super().record(path, parts, size)
        with self._record_lock:
            self.received.append({"path": path, "bytes": size, "parts": parts})

    async def handle_upload(self, request: web.Request) -> web.StreamResponse:
        fault = self.faults.draw() if self.faults is not None else None
        if fault == "503":
            return _early(503, "injected failure")
        if fault == "429":
            assert self.faults is not None
            retry_after = str(self.faults.retry_after)
            return _early(429, "injected rate limit", **{"Retry-After": retry_after})
        if fault is not None:
            request[_FAULT] = fault
        return await super().handle_upload(request)

    async def body_chunks(self, request: web.Request) -> AsyncIterator[bytes]:
        received = 0
        cut = max((request.content_length or 0) // 2, 1)
        async for chunk in super().body_chunks(request):
            received += len(chunk)
            if request.get(_FAULT) == "reset" and received >= cut:
                _reset(request)
                raise ConnectionResetError("injected reset")
            yield chunk


def _reset(request: web.Request) -> None:
    """Drops the connection with a TCP reset (SO_LINGER 0), as a crashing proxy would."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
