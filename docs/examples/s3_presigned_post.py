"""Upload a big file to S3 the way a browser form does (a presigned POST), streamed from disk.

S3 wants the policy fields first and the file last, in a part named "file", and it refuses
chunked uploads: the request needs its exact Content-Length, which multipart_encode gives
before a byte is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests
from poster_rs import multipart_encode


def upload_presigned_post(presigned: dict[str, Any], path: Path) -> requests.Response:
    """`presigned` is what boto3's `generate_presigned_post` returns: `url` and `fields`."""
    params = [*presigned["fields"].items(), ("file", path)]  # the file part last
    stream, headers = multipart_encode(params)
    response = requests.post(presigned["url"], data=stream, headers=headers, timeout=300)
    response.raise_for_status()  # S3 answers 204 No Content unless success_action_status says
    return response
