"""requests-toolbelt's MultipartEncoder and MultipartEncoderMonitor, the poster_rs way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from poster_rs import multipart_encode


def upload_like_toolbelt(
    url: str, path: Path, on_progress: Callable[[int, int], None]
) -> requests.Response:
    with open(path, "rb") as f:
        fields = {
            "field0": "value",
            "field1": "value",
            "field2": (path.name, f, "text/plain"),  # (filename, file, content type)
        }

        def monitor(param: Any, current: int, total: int) -> None:
            on_progress(current, total)  # toolbelt: monitor.bytes_read, monitor.len

        stream, headers = multipart_encode(fields, cb=monitor)
        response = requests.post(url, data=stream, headers=headers, timeout=60)
    response.raise_for_status()
    return response
