"""poster_rs: streaming multipart/form-data uploads with a Rust core.

poster 0.8.1's API for Python 3: ``multipart_encode(params)`` returns ``(stream, headers)``; the
stream yields the body in large chunks straight from disk, and ``headers`` carries the exact
Content-Length. The stream plugs into requests, httpx, aiohttp, urllib3, urllib and http.client.
"""

from __future__ import annotations

import logging

from ._poster_rs import (
    BoundaryError,
    FileChangedError,
    NotSeekableError,
    __version__,
)
from .encode import (
    MultipartParam,
    encode_and_quote,
    encode_file_header,
    encode_string,
    gen_boundary,
    get_body_size,
    get_headers,
    multipart_encode,
)
from .ship import RetryPolicy, UploadJob, UploadResult, ship, ship_iter
from .stream import ChunkedMultipartStream, MultipartReader, MultipartStream

version = tuple(int(x) for x in __version__.split(".")[:3])

# Library logging is silent unless the application configures it (``poster-rs -v`` does).
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "BoundaryError",
    "ChunkedMultipartStream",
    "FileChangedError",
    "MultipartParam",
    "MultipartReader",
    "MultipartStream",
    "NotSeekableError",
    "RetryPolicy",
    "UploadJob",
    "UploadResult",
    "__version__",
    "encode_and_quote",
    "encode_file_header",
    "encode_string",
    "gen_boundary",
    "get_body_size",
    "get_headers",
    "multipart_encode",
    "ship",
    "ship_iter",
    "version",
]
