"""Receiving one multipart/form-data body for ``poster-rs serve``.

The core's parser (``FormParser``) finds the parts as the body streams in and enforces the
per-request limits (parts, bytes of part headers); this module names the parts as RFC 7578
says (UTF-8, ``filename*``/``name*`` accepted) and hands their data, in blocks of about a
megabyte, to ``digest`` and ``store_files``, meant to run in worker threads, off the event
loop. Nothing here outlives the request.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from ._poster_rs import FormParser, Sha256
from ._store import UploadDirectory

__all__ = ["FormError", "FormLimits", "FormReceiver", "ReceivedPart", "parse_disposition"]

#: Text fields up to this size are echoed back in the answer (as ``value``).
ECHO_MAX = 4096
#: Data queued for a worker thread before it is handed over: large writes, few thread switches.
BLOCK = 1 << 20
#: A batch this small is hashed on the event loop: a thread switch costs more than the hash.
DIGEST_INLINE_MAX = 64 << 10
#: Longest boundary accepted (RFC 2046 allows 70 characters).
BOUNDARY_MAX = 200


class FormError(Exception):
    """The body breaks a rule of the server's: answered with ``status`` and ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class FormLimits:
    max_parts: int = 10_000
    #: Bytes of header lines in one part (names and values together).
    max_part_header: int = 16 << 10


@dataclass
class ReceivedPart:
    """What the server saw of one part (its entry in the JSON answer)."""

    name: str
    filename: str | None
    content_type: str | None
    size: int = 0
    sha256: str = ""
    stored_as: str | None = None
    value: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            "sha256": self.sha256,
        }
        if self.stored_as is not None:
            out["stored_as"] = self.stored_as
        if self.value is not None:
            out["value"] = self.value
        return out


def _decode_utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FormError(400, f"the part's {what} is not UTF-8 (RFC 7578 section 5.1)") from None


def _extended_value(raw: bytes, key: str) -> str:
    """An RFC 8187 ``charset'language'percent-encoded`` value (``filename*=utf-8''...``)."""
    charset, quote1, rest = raw.partition(b"'")
    _language, quote2, encoded = rest.partition(b"'")
    if not (quote1 and quote2):
        raise FormError(400, f"malformed {key}* parameter in Content-Disposition")
    codec = charset.decode("ascii", "replace").lower()
    if codec not in ("utf-8", "iso-8859-1"):
        raise FormError(400, f"{key}* uses charset {codec!r}: only UTF-8 and ISO-8859-1 are read")
    data = urllib.parse.unquote_to_bytes(encoded)
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        raise FormError(400, f"{key}* is not valid {codec}") from None


def _split_params(raw: bytes) -> list[tuple[str, bytes, bool]]:
    """``(key, value, quoted)`` for each ``; key=value`` after the disposition type; ``;``
    inside a quoted string does not split."""
    out: list[tuple[str, bytes, bool]] = []
    pos = raw.find(b";")
    while 0 <= pos < len(raw):
        pos += 1
        equals = raw.find(b"=", pos)
        semicolon = raw.find(b";", pos)
        if equals < 0 or 0 <= semicolon < equals:
            pos = semicolon  # a parameter without a value: skipped
            continue
        key = raw[pos:equals].strip().lower().decode("latin-1")
        pos = equals + 1
        while pos < len(raw) and raw[pos] in b" \t":
            pos += 1
        if raw[pos : pos + 1] == b'"':
            value = bytearray()
            pos += 1
            while pos < len(raw) and raw[pos] != 0x22:  # '"'
                # Only \\ and \" are escapes: browsers send other backslashes as they are.
                if raw[pos] == 0x5C and raw[pos + 1 : pos + 2] in (b"\\", b'"'):
                    pos += 1
                value.append(raw[pos])
                pos += 1
            out.append((key, bytes(value), True))
            pos = raw.find(b";", pos)
        else:
            semicolon = raw.find(b";", pos)
            end = len(raw) if semicolon < 0 else semicolon
            out.append((key, raw[pos:end].strip(), False))
            pos = semicolon
    return out


def parse_disposition(raw: bytes) -> dict[str, str]:
    """The parameters of a part's ``Content-Disposition`` (``name``, ``filename``, ...), decoded:
    UTF-8 as RFC 7578 says, and ``name*``/``filename*`` (RFC 8187) taking precedence over the
    plain forms. A parameter given twice is an error: two parsers could pick different ones."""
    plain: dict[str, str] = {}
    extended: dict[str, str] = {}
    for key, value, quoted in _split_params(raw):
        if key.endswith("*"):
            base = key[:-1]
            if base in extended:
                raise FormError(400, f"{key} given twice in Content-Disposition")
            extended[base] = _extended_value(value, base)
            continue
        if key in plain:
            raise FormError(400, f"{key} given twice in Content-Disposition")
        text = _decode_utf8(value, key)
        # A full Windows path (old Internet Explorer sent those): keep its last component, as
        # python-multipart and werkzeug do.
        if key == "filename" and quoted and (text[1:3] == ":\\" or text[:2] == "\\\\"):
            text = text.rsplit("\\", 1)[-1]
        plain[key] = text
    return {**plain, **extended}


@dataclass
class _PartState:
    """A part being received: lives in the worker thread's hands until the part ends."""

    info: ReceivedPart
    hash: Sha256 = field(default_factory=Sha256)
    fd: int = -1
    #: A text field's first bytes, echoed back if the whole value fits in ECHO_MAX.
    value: bytearray | None = None
    #: Whether the part is hashed on a thread of its own (``Sha256.update_later``).
    hashed_later: bool = False


#: Work for the worker thread, in order: ("begin", part) / ("data", part, data) / ("end", part).
Work = list[tuple[Any, ...]]


def _form_error(exc: ValueError) -> FormError:
    """The answer to a body the core's parser refused (``ValueError(message, is_limit)``)."""
    message, is_limit = exc.args
    return FormError(413 if is_limit else 400, message)


class FormReceiver:
    """One request body: ``feed`` it chunks (on the event loop: parsing only); run each
    ``take_work()`` batch through ``digest`` and ``store_files`` (or ``digest_and_store``),
    which may run at the same time in different threads, but each finishes a batch before it
    gets the next; call ``abort``
    (also off the loop) if the request fails, to close and remove its files."""

    def __init__(self, boundary: bytes, store: UploadDirectory | None, limits: FormLimits) -> None:
        if not 0 < len(boundary) <= BOUNDARY_MAX or not boundary.isascii():
            raise FormError(
                400, f"the multipart boundary must be 1 to {BOUNDARY_MAX} ASCII characters"
            )
        try:
            self._parser = FormParser(boundary, limits.max_parts, limits.max_part_header)
        except ValueError as exc:
            raise _form_error(exc) from None
        self.store = store
        self.limits = limits
        self.parts: list[ReceivedPart] = []
        self.pending = 0  # data bytes in ``work``
        self.work: Work = []
        #: Whether a part of this request is stored as a file: only then is there disk work.
        self.has_files = False
        self._part: _PartState | None = None
        self._created: list[str] = []  # stored names, for abort()
        self._open: list[_PartState] = []

    # --- on the event loop --------------------------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        try:
            events = self._parser.feed(chunk)
        except ValueError as exc:
            raise _form_error(exc) from None
        for event in events:
            if isinstance(event, bytes):
                self.work.append(("data", self._part, event))
                self.pending += len(event)
            elif event is None:
                self.work.append(("end", self._part))
                self._part = None
            else:
                self._begin(event)

    def finalize(self) -> None:
        try:
            self._parser.finish()
        except ValueError as exc:
            raise _form_error(exc) from None

    def take_work(self) -> Work:
        work, self.work, self.pending = self.work, [], 0
        return work

    def _begin(self, header_lines: list[tuple[bytes, bytes]]) -> None:
        headers: dict[str, bytes] = {}
        for raw_name, value in header_lines:
            name = raw_name.decode("ascii").lower()
            if name in headers and name == "content-disposition":
                raise FormError(400, "a part has two Content-Disposition headers")
            headers[name] = value
        params = parse_disposition(headers.get("content-disposition", b""))
        content_type = headers.get("content-type")
        info = ReceivedPart(
            params.get("name", ""),
            params.get("filename"),
            None if content_type is None else content_type.decode("utf-8", "replace"),
        )
        self.parts.append(info)
        self.has_files = self.has_files or (info.filename is not None and self.store is not None)
        self._part = _PartState(info, value=bytearray() if info.filename is None else None)
        self.work.append(("begin", self._part))

    # --- in worker threads: ``digest`` and ``store`` of one batch may run at the same time ----

    def digest(self, work: Work, *, hash_aside: bool = True) -> None:
        """Sizes, SHA-256 digests and the values of short text fields, for one batch. A part that
        ends in the batch has its pieces hashed at once, the GIL released once; with
        ``hash_aside``, one that goes on past it is hashed by a thread of its own that never
        takes the GIL, while the event loop receives the next batch."""
        index = 0
        while index < len(work):
            kind, part = work[index][0], work[index][1]
            index += 1
            if kind == "data":
                pieces = [work[index - 1][2]]
                while index < len(work) and work[index][0] == "data" and work[index][1] is part:
                    pieces.append(work[index][2])
                    index += 1
                ends_here = index < len(work) and work[index][0] == "end"
                if part.hashed_later or (hash_aside and not ends_here):
                    # The part goes on past this batch: its own hashing thread hashes while the
                    # next batch is received (a thread for a part that ends here would only be
                    # started and joined).
                    part.hashed_later = True
                    part.hash.update_later(pieces)
                else:
                    part.hash.update_all(pieces)
                for piece in pieces:
                    part.info.size += len(piece)
                    if part.value is not None:
                        if part.info.size <= ECHO_MAX:
                            part.value += piece
                        else:
                            part.value = None
            elif kind == "end":
                part.info.sha256 = part.hash.hexdigest()
                if part.value is not None:
                    part.info.value = part.value.decode("utf-8", "replace")
                    part.value = None

    def digest_and_store(self, work: Work) -> None:
        """``digest``, then ``store_files``: one batch in one worker."""
        self.digest(work)
        self.store_files(work)

    def store_files(self, work: Work) -> None:
        """Writes one batch's file data; consecutive pieces of a file go out in one ``writev``."""
        if self.store is None:
            return
        index = 0
        while index < len(work):
            kind, part = work[index][0], work[index][1]
            index += 1
            if kind == "data":
                pieces = [work[index - 1][2]]
                while index < len(work) and work[index][0] == "data" and work[index][1] is part:
                    pieces.append(work[index][2])
                    index += 1
                if part.fd >= 0:
                    _write_all(part.fd, pieces)
            elif kind == "begin" and part.info.filename is not None:
                name, part.fd = self.store.create(part.info.filename)
                part.info.stored_as = name
                self._created.append(name)
                self._open.append(part)
            elif kind == "end" and part.fd >= 0:
                os.close(part.fd)
                part.fd = -1
                self._open.remove(part)

    def abort(self) -> None:
        """Closes and removes every file this request created: an upload that failed leaves
        nothing behind."""
        for part in self._open:
            os.close(part.fd)
            part.fd = -1
        self._open.clear()
        if self.store is not None:
            for name in self._created:
                self.store.remove(name)
        self._created.clear()


def _write_all(fd: int, pieces: list[memoryview | bytes]) -> None:
    views = [memoryview(p) for p in pieces]
    while views:
        # IOV_MAX is 1024 on Linux.
        written = os.writev(fd, views[:1024])
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:
            views[0] = views[0][written:]
