"""Upload a big file with a tqdm progress bar that follows the bytes as they are sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests
from poster_rs import multipart_encode
from tqdm import tqdm


def upload_with_tqdm(url: str, path: Path) -> requests.Response:
    with tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc=path.name) as bar:

        def progress(param: Any, current: int, total: int) -> None:
            # Called as the body streams: `current` bytes of `total` have been produced.
            bar.total = total
            bar.update(current - bar.n)

        stream, headers = multipart_encode({"title": path.stem, "file": path}, cb=progress)
        response = requests.post(url, data=stream, headers=headers, timeout=60)
    response.raise_for_status()
    return response
