"""Upload several files, one rich progress bar each, with transfer speed and time left."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests
from poster_rs import multipart_encode
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


def upload_with_rich(url: str, paths: list[Path]) -> list[requests.Response]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    responses = []
    with Progress(*columns) as progress:
        for path in paths:
            task = progress.add_task(path.name, total=path.stat().st_size)

            def advance(param: Any, current: int, total: int, task: TaskID = task) -> None:
                progress.update(task, completed=current, total=total)

            stream, headers = multipart_encode({"file": path}, cb=advance)
            response = requests.post(url, data=stream, headers=headers, timeout=60)
            response.raise_for_status()
            responses.append(response)
    return responses
