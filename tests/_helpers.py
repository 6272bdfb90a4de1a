"""Shared helpers for the encoding API tests: encoding to bytes, counting descriptors, splitting a
body into parts, and parsing bodies back with werkzeug and python-multipart."""

from __future__ import annotations

import io
import os
from typing import Any

import poster_rs

B = "XYZXYZXYZ"  # poster 0.8.1's test boundary


def encode_all(params: Any, boundary: str | None = None, **kw: Any) -> tuple[bytes, dict[str, str]]:
    """Encodes ``params`` and returns the whole body and the headers; closes the stream."""
    stream, headers = poster_rs.multipart_encode(params, boundary, **kw)
    with stream:
        body = b"".join(stream)
    return body, headers


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def boundary_of(content_type: str) -> str:
    _, _, value = content_type.partition("boundary=")
    if value.startswith('"'):
        value = value[1:-1]
    return value


def split_parts(body: bytes, boundary: str) -> list[tuple[list[bytes], bytes]]:
    """Splits a body into ``(header lines, data)`` per part, checking the framing exactly: first
    line ``--B``, every part ends with CRLF before the next delimiter, body ends ``--B--`` CRLF."""
    delim = b"--" + boundary.encode("ascii")
    closing = delim + b"--\r\n"
    assert body.endswith(closing), body[-80:]
    if body == closing:
        return []
    assert body.startswith(delim + b"\r\n"), body[:80]
    inner = body[len(delim) + 2 : -len(closing)]
    assert inner.endswith(b"\r\n")
    raw_parts = inner[:-2].split(b"\r\n" + delim + b"\r\n")
    parts = []
    for raw in raw_parts:
        head, sep, data = raw.partition(b"\r\n\r\n")
        assert sep, raw[:200]
        parts.append((head.split(b"\r\n"), data))
    return parts


def wsgi_environ(body: bytes, content_type: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }


def parse_werkzeug(
    body: bytes, content_type: str
) -> tuple[list[tuple[str, str]], list[tuple[str, str | None, bytes]]]:
    """Fields ``(name, value)`` and files ``(name, filename, data)``, each sorted (a MultiDict
    groups items by key, so the original order is not kept)."""
    from werkzeug.formparser import parse_form_data

    _, form, files = parse_form_data(wsgi_environ(body, content_type))
    fields = sorted(form.items(multi=True))
    out_files = []
    for name, storage in files.items(multi=True):
        out_files.append((name, storage.filename, storage.read()))
        storage.close()
    return fields, sorted(out_files, key=repr)


def parse_python_multipart(
    body: bytes, content_type: str
) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes | None, bytes]]]:
    """Fields and files in body order, names and filenames as the raw bytes python-multipart
    gives."""
    import python_multipart

    fields: list[tuple[bytes, bytes]] = []
    files: list[tuple[bytes, bytes | None, bytes]] = []

    def on_field(field: Any) -> None:
        fields.append((field.field_name, field.value))

    def on_file(file: Any) -> None:
        file.file_object.seek(0)
        files.append((file.field_name, file.file_name, file.file_object.read()))
        file.close()

    headers = {"Content-Type": content_type.encode(), "Content-Length": str(len(body)).encode()}
    python_multipart.parse_form(headers, io.BytesIO(body), on_field, on_file)
    return fields, files


# --- how each escape mode writes a name or filename (DESIGN.md "Wire format") ---------------


def escape_quoted(text: str) -> str:
    out = []
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\t":
            out.append(ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"%{ord(ch):02X}")
        else:
            out.append(ch)
    return "".join(out)


def escape_html5(text: str) -> str:
    """WHATWG's rule, plus NUL -> %00 (a NUL never reaches a header line)."""
    return text.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A").replace("\0", "%00")


def escape_poster_filename(text: str) -> str:
    """poster 0.8.1: ``xmlcharrefreplace``, then Python 2's ``string_escape``, then ``"`` ->
    ``\\"``."""
    out = []
    for ch in text.encode("ascii", "xmlcharrefreplace").decode("ascii"):
        if ch == "\\":
            out.append("\\\\")
        elif ch == "'":
            out.append("\\'")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out).replace('"', '\\"')


def control_escaped(text: str) -> str:
    """What a parser that undoes ``\\"`` and ``\\\\`` but no percent-escape sees of a name sent
    in the quoted mode: C0 controls other than TAB, and DEL, stay as ``%XX``."""
    return "".join(
        f"%{ord(ch):02X}" if (ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F else ch
        for ch in text
    )
