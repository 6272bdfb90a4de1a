"""Upload with httpx, sync and async. The async client takes the stream's async iterator: the
stream reads files in the default executor, so the event loop never waits on the disk."""

from __future__ import annotations

from pathlib import Path

import httpx
from poster_rs import multipart_encode


def upload_with_httpx(url: str, path: Path) -> httpx.Response:
    stream, headers = multipart_encode({"title": "report", "file": path})
    with httpx.Client(timeout=60) as client:
        response = client.post(url, content=stream, headers=headers)
    response.raise_for_status()
    return response


async def upload_with_httpx_async(url: str, path: Path) -> httpx.Response:
    stream, headers = multipart_encode({"title": "report", "file": path})
    async with httpx.AsyncClient(timeout=60) as client:
        # aiter(): AsyncClient refuses a body that is also sync-iterable.
        response = await client.post(url, content=aiter(stream), headers=headers)
    response.raise_for_status()
    return response
