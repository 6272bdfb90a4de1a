"""Imports an installed poster_rs and streams a file through it: the check for wheels whose
platform cannot run the whole suite in the release workflow (macOS, musllinux).
Run it from a directory outside the source tree."""

from __future__ import annotations

import pathlib
import sys
import sysconfig
import tempfile

import poster_rs

where = pathlib.Path(poster_rs.__file__).resolve()
site = pathlib.Path(sysconfig.get_paths()["platlib"]).resolve()
if not where.is_relative_to(site):
    sys.exit(f"poster_rs imported from {where}, not from the installed wheel in {site}")

with tempfile.TemporaryDirectory() as scratch:
    path = pathlib.Path(scratch, "data.bin")
    data = bytes(range(256)) * 8192  # 2 MiB: more than one chunk
    path.write_bytes(data)
    stream, headers = poster_rs.multipart_encode(
        [("field", "value"), ("upload", path)], boundary="smoke-boundary"
    )
    body = b"".join(stream)
    if len(body) != int(headers["Content-Length"]):
        sys.exit(f"Content-Length {headers['Content-Length']} but {len(body)} bytes streamed")
    if body.count(data) != 1 or not body.endswith(b"\r\n--smoke-boundary--\r\n"):
        sys.exit("the file's bytes or the closing boundary did not come through")
    stream.seek(0)
    if b"".join(stream) != body:
        sys.exit("a rewound stream produced different bytes")

print(f"poster_rs {poster_rs.__version__} on {sys.platform}: smoke test passed ({where.parent})")
