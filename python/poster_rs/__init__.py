"""poster_rs: streaming multipart/form-data uploads with a Rust core.

poster 0.8.1's API for Python 3: ``multipart_encode(params)`` returns ``(stream, headers)``; the
stream yields the body in large chunks straight from disk, and ``headers`` carries the exact
Content-Length. The stream plugs into requests, httpx, aiohttp, urllib3, urllib and http.client.
"""

from __future__ import annotations

import logging

from . import encode, errors
from ._poster_rs import __version__
from ._version import release_tuple

# poster's encode API and the exceptions, exported under the names their modules list.
from .encode import *  # noqa: F403
from .errors import *  # noqa: F403
from .ship import RetryPolicy, UploadJob, UploadResult, ship, ship_iter
from .stream import ChunkedMultipartStream, MultipartReader, MultipartStream

version = release_tuple(__version__)

# Library logging is silent unless the application configures it (``poster-rs -v`` does).
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "ChunkedMultipartStream",
    "MultipartReader",
    "MultipartStream",
    "RetryPolicy",
    "UploadJob",
    "UploadResult",
    "__version__",
    "ship",
    "ship_iter",
    "version",
]
__all__ += encode.__all__
__all__ += errors.__all__
