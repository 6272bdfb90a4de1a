"""poster 0.8.1's own example, on Python 3: the imports change, the calls do not."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from poster_rs.encode import multipart_encode
from poster_rs.streaminghttp import register_openers


def upload_like_poster(url: str, path: Path) -> bytes:
    register_openers()  # installs urllib handlers that stream the body
    with open(path, "rb") as image:
        datagen, headers = multipart_encode({"image1": image})
        request = urllib.request.Request(url, datagen, headers)
        with urllib.request.urlopen(request, timeout=60) as response:
            reply: bytes = response.read()
    return reply
