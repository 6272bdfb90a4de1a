"""Ship many files from a Dask cluster: ship() runs its upload jobs on the executor of a
distributed Client (`client.get_executor()`), each worker keeps its own keep-alive connections,
and the results come back to the caller."""

from __future__ import annotations

from concurrent.futures import Executor
from pathlib import Path

from poster_rs import UploadResult, ship


def ship_on_dask(executor: Executor, paths: list[Path], url: str) -> list[UploadResult]:
    results = ship(
        [str(path) for path in paths],
        url,
        fields={"source": "dask"},
        executor=executor,
        retries=5,
        progress=False,
    )
    failed = [result for result in results if not result.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} uploads failed, first: {failed[0].error}")
    return results
