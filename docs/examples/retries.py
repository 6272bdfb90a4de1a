"""Retry uploads on connection errors and 429/5xx answers with urllib3's Retry, directly or
through a requests adapter. urllib3 calls the stream's tell() before the first attempt and
seek() before each retry, so every attempt sends the whole body."""

from __future__ import annotations

from pathlib import Path

import requests
import urllib3
from poster_rs import multipart_encode
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

RETRY = Retry(
    total=5,
    backoff_factor=0.5,  # 0.5 s, 1 s, 2 s, ... between attempts
    status_forcelist=(429, 500, 502, 503, 504),
    allowed_methods=None,  # retry POST too: make sure the server treats repeats safely
    respect_retry_after_header=True,
)


def upload_with_urllib3(url: str, path: Path) -> urllib3.BaseHTTPResponse:
    stream, headers = multipart_encode({"file": path})
    with urllib3.PoolManager(retries=RETRY, timeout=60.0) as http:
        return http.request("POST", url, body=stream, headers=headers)


def upload_with_requests(url: str, path: Path) -> requests.Response:
    with requests.Session() as session:
        adapter = HTTPAdapter(max_retries=RETRY)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        stream, headers = multipart_encode({"file": path})
        response = session.post(url, data=stream, headers=headers, timeout=60)
    response.raise_for_status()
    return response
