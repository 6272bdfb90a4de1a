"""poster_rs: streaming multipart/form-data uploads with a Rust core.

poster 0.8.1's API for Python 3: ``multipart_encode(params)`` returns ``(stream, headers)``; the
stream yields the body in large chunks straight from disk, and ``headers`` carries the exact
Content-Length. The stream plugs into requests, httpx, aiohttp, urllib3, urllib and http.client.
"""

from __future__ import annotations

from ._poster_rs import (
    BoundaryError,
    FileChangedError,
    NotSeekableError,
    __version__,
)
from ._version import release_tuple
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

version = release_tuple(__version__)

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
