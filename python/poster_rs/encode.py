"""multipart/form-data encoding with poster 0.8.1's API, for Python 3.

Everything ``poster.encode`` had is here with the same names and call shapes; the body itself is
built and streamed by the Rust core. See the README for the deliberate differences from poster.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import io
import mimetypes
import os
import stat
import urllib.parse
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, BinaryIO, Literal, NamedTuple

from . import _poster_rs
from .stream import ChunkedMultipartStream, MultipartStream

__all__ = [
    "MultipartParam",
    "encode_and_quote",
    "encode_file_header",
    "encode_string",
    "gen_boundary",
    "get_body_size",
    "get_headers",
    "multipart_encode",
]

#: How names and filenames are escaped (see the README).
EscapeMode = Literal["quoted", "html5", "poster"]
#: ``cb(param, current, total)``: ``param`` is ``None`` on the last call, ``total`` when unknown.
Callback = Callable[[Any, int, Any], object]

#: Default size of the chunks a stream yields (file data is read straight into them).
DEFAULT_CHUNK_SIZE = 1 << 20


def gen_boundary() -> str:
    """A new boundary: 32 lowercase hex digits carrying 128 random bits."""
    return _poster_rs.gen_boundary()


def encode_and_quote(data: str | bytes | None) -> str | None:
    """poster's helper: UTF-8 encode then ``urllib.parse.quote_plus``. ``None`` stays ``None``.

    poster used it on boundaries; poster_rs validates boundaries instead and keeps this only
    for compatibility.
    """
    if data is None:
        return None
    if isinstance(data, str):
        data = data.encode("utf-8")
    return urllib.parse.quote_plus(data)


def _text(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{what} {value!r} is not valid UTF-8") from exc
    raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")


def _strify(value: Any) -> str | bytes | None:
    if value is None or isinstance(value, (str, bytes)):
        return value
    if isinstance(value, (Mapping, set, frozenset)):
        raise TypeError(
            f"a field value must be text, bytes or a number, not {type(value).__name__}"
        )
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if hasattr(value, "read"):
        raise TypeError(
            "a file object was given as value; pass it as fileobj= (or as the value of a "
            "(name, file) pair to multipart_encode)"
        )
    if isinstance(value, os.PathLike):
        raise TypeError(
            "a path was given as value; use MultipartParam.from_file(name, path) "
            "(or pass it as the value of a (name, path) pair to multipart_encode)"
        )
    return str(value)


def _is_text_file(fileobj: Any) -> bool:
    if isinstance(fileobj, io.TextIOBase):
        return True
    mode = getattr(fileobj, "mode", None)
    return isinstance(mode, str) and "b" not in mode and isinstance(fileobj, io.IOBase)


def _regular_fd(fileobj: Any) -> int | None:
    """The descriptor of a file object backed by a regular file, else ``None``."""
    try:
        fd = fileobj.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    if not isinstance(fd, int):
        return None
    try:
        return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None
    except OSError:
        return None


def _measure(fileobj: Any) -> tuple[int | None, int | None]:
    """``(start, size)`` of a file object's remaining data; ``None`` where unknowable."""
    fd = _regular_fd(fileobj)
    try:
        start = fileobj.tell()
    except (AttributeError, OSError, ValueError):
        start = None
    if fd is not None and start is not None:
        return start, max(os.fstat(fd).st_size - start, 0)
    if start is None:
        return None, None
    try:
        end = fileobj.seek(0, io.SEEK_END)
        fileobj.seek(start)
    except (AttributeError, OSError, ValueError):
        return start, None
    if end is None:  # a seek() that does not return the position
        end = fileobj.tell()
        fileobj.seek(start)
    return start, max(end - start, 0)


def _clean_text(text: str) -> str:
    """``text`` with bytes that were not UTF-8 (surrogate escapes) and lone surrogates
    replaced by U+FFFD, so it can be sent as UTF-8."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "replace")
    return raw.decode("utf-8", "replace")


def _display_path(path: str | bytes) -> str:
    """A path as text for a filename: bytes that are not UTF-8 become U+FFFD (the file itself
    is still opened by its exact bytes)."""
    return _clean_text(os.fsdecode(path))


@functools.lru_cache(maxsize=1024)
def _guess_type_for_suffix(suffix: str) -> str | None:
    """``mimetypes.guess_type`` of a name ending in ``suffix`` (its last two suffixes, all that
    decides the guess), cached: the core asks once per file of a ``(name, path)`` pair."""
    return mimetypes.guess_type("x" + suffix)[0]


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, "") if value is None else (1, value)


class _ParamFields(NamedTuple):
    """What ``MultipartParam._normalize_arguments`` hands the compiled constructor."""

    name: str
    value: str | bytes | None
    filename: str | None
    filetype: str | None
    filesize: int | None
    fileobj: BinaryIO | None
    start: int | None  # where the file object's data begins
    headers: list[tuple[str, str]] | None


class MultipartParam(_poster_rs.Param):
    """One multipart/form-data parameter: a text value, or a file.

    ``MultipartParam(name, value=None, filename=None, filetype=None, filesize=None,
    fileobj=None, cb=None)`` as in poster 0.8.1. Exactly one of ``value`` and ``fileobj`` may be
    given. ``headers`` adds part header lines (values with CR, LF or NUL are refused).
    ``cb(param, current, total)`` is called as this part streams, with ``current`` and
    ``total`` counted within the part.

    The fields live in the compiled base class, which builds a ``str`` name with a ``str`` or
    ``bytes`` value on its own and renders the part's bytes; other arguments are checked by
    ``_normalize_arguments`` below.
    """

    # No instance __dict__: a parameter holding only text is then left out of the cycle
    # collector's work (see Param.__init__), which matters for forms of 100,000 parameters.
    __slots__ = ()

    @classmethod
    def _normalize_arguments(
        cls,
        name: str | bytes,
        value: Any,
        filename: Any,
        filetype: Any,
        filesize: Any,
        fileobj: Any,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
    ) -> _ParamFields:
        name = _text(name, "name")
        value = _strify(value)
        if filename is not None:
            filename = cls._filename_text(filename)
        if filetype is not None and not isinstance(filetype, str):
            raise TypeError(f"filetype must be str, not {type(filetype).__name__}")
        if value is not None and fileobj is not None:
            raise ValueError("Only one of value or fileobj may be specified")
        if filesize is not None:
            if isinstance(filesize, bool) or not isinstance(filesize, int):
                raise TypeError(f"filesize must be an int, not {type(filesize).__name__}")
            if filesize < 0:
                raise ValueError(f"filesize must not be negative (got {filesize})")
        start = None
        if fileobj is not None:
            if not hasattr(fileobj, "read"):
                raise TypeError(f"fileobj must have a read() method, not {type(fileobj).__name__}")
            if getattr(fileobj, "closed", False) is True:
                raise ValueError(f"part {name!r}: the file object is closed")
            if _is_text_file(fileobj):
                raise TypeError(
                    f"part {name!r}: the file object is open in text mode; open it in "
                    "binary mode ('rb') so its bytes are sent as they are"
                )
            start, measured = _measure(fileobj)
            if filesize is None:
                filesize = measured
            elif measured is not None and measured != filesize:
                raise ValueError(
                    f"part {name!r}: filesize={filesize} but the file object has "
                    f"{measured} bytes from its current position"
                )
        header_list = None if headers is None else cls._header_list(headers)
        return _ParamFields(name, value, filename, filetype, filesize, fileobj, start, header_list)

    @staticmethod
    def _filename_text(filename: Any) -> str:
        if isinstance(filename, bytes):
            return _text(filename, "filename")
        if isinstance(filename, os.PathLike):
            return _display_path(os.fspath(filename))
        return _clean_text(str(filename))

    @staticmethod
    def _header_list(
        headers: Mapping[str, str] | Iterable[tuple[str, str]],
    ) -> list[tuple[str, str]]:
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        out = []
        for key, value in pairs:
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError("part header names and values must be str")
            out.append((key, value))
        return out

    @property
    def fileobj(self) -> BinaryIO | None:
        """The file object; for a parameter made by ``from_file`` it is opened on first access
        and closed with the parameter."""
        if self._fileobj is None and self._path is not None:
            fileobj = open(self._path, "rb")  # noqa: SIM115 - closed by the finalizer below
            weakref.finalize(self, fileobj.close)
            self._fileobj = fileobj
            self._start = 0
        return self._fileobj

    @fileobj.setter
    def fileobj(self, fileobj: BinaryIO | None) -> None:
        self._fileobj = fileobj
        self._path = None
        self._start = None if fileobj is None else _measure(fileobj)[0]

    def _key(self) -> tuple[Any, ...]:
        return (
            _sort_key(self.name),
            _sort_key(self.value),
            _sort_key(self.filename),
            _sort_key(self.filetype),
            _sort_key(self.filesize),
            id(self._fileobj) if self._fileobj is not None else self._path,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MultipartParam):
            return NotImplemented
        return self._key() == other._key()

    def __lt__(self, other: MultipartParam) -> bool:
        return self._key()[:5] < other._key()[:5]

    # Mutable and compared by value, so unhashable; mypy wants __hash__ to stay a method.
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        what = (
            f"value={self.value!r}"
            if self.value is not None
            else f"filename={self.filename!r}, filesize={self.filesize!r}"
        )
        return f"MultipartParam({self.name!r}, {what})"

    def __reduce__(self) -> tuple[Callable[..., MultipartParam], tuple[Any, ...]]:
        """Copies and pickles field by field, as they did when the class was plain Python (a
        compiled base class has no default way)."""
        fields = (
            self.name,
            self.value,
            self.filename,
            self.filetype,
            self.filesize,
            self.cb,
            self.headers,
            self._fileobj,
            self._path,
            self._start,
        )
        return _restore_param, (type(self), fields)

    def reset(self) -> None:
        """Rewinds the file to where it was when the parameter was made."""
        if self._fileobj is not None:
            self._fileobj.seek(self._start or 0)
        elif self._path is None and self.value is None:
            raise ValueError("Don't know how to reset this parameter")

    @classmethod
    def from_file(cls, paramname: str | bytes, filename: str | os.PathLike[str]) -> MultipartParam:
        """A file parameter read from the path ``filename``, sent with its base name and a
        content type guessed from it. The file is measured now (a missing, unreadable or
        special file raises here) and opened only while it is streamed."""
        return cls._from_path(paramname, filename, None)

    @classmethod
    def _from_path(
        cls, paramname: str | bytes, file_path: str | os.PathLike[str], filetype: str | None
    ) -> MultipartParam:
        """``from_file`` with ``filetype`` given, or guessed from the path when ``None``."""
        path = os.fspath(file_path)
        size = _poster_rs.measure_file(_text(paramname, "name"), path)
        text_path = _display_path(path)
        param = cls(
            paramname,
            filename=os.path.basename(text_path),
            filetype=mimetypes.guess_type(text_path)[0] if filetype is None else filetype,
            filesize=size,
        )
        param._path = path
        return param

    @classmethod
    def from_params(cls, params: Params) -> list[MultipartParam]:
        """Converts a mapping or a sequence of ``(name, value)`` pairs and ``MultipartParam``s
        into a list of ``MultipartParam``s. A list value gives one parameter per element; a
        file object or path value gives a file parameter named after the file's base name."""
        out: list[MultipartParam] = []
        for item in _iter_items(params):
            out.extend(_params_from_item(cls, item))
        return out

    @contextlib.contextmanager
    def _data_file(self) -> Iterator[tuple[BinaryIO, int | None]]:
        """The file holding the part's data, at the data's first byte, and how many bytes of
        it to send (``None``: to its end). A path is opened for the duration."""
        if self._path is not None and self._fileobj is None:
            with open(self._path, "rb") as f:
                yield f, None
            return
        fileobj = self.fileobj
        if fileobj is None:
            raise TypeError(
                f"part {self.name!r} has no value: give a value, a file object or a path"
            )
        self._rewind()
        yield fileobj, self.filesize

    def _read_all(self) -> bytes:
        with self._data_file() as (fileobj, size):
            data = fileobj.read() if size is None else fileobj.read(size)
        if not isinstance(data, bytes):
            raise TypeError("the file object's read() must return bytes")
        return data

    def encode(self, boundary: str, *, escape: EscapeMode = "quoted") -> bytes:
        """The whole part: header, data, CRLF. Raises ``BoundaryError`` (a ``ValueError``)
        if the data contains the delimiter."""
        data = None if self.value is not None else self._read_all()
        return self._encode(boundary, data, escape=escape)

    def iter_encode(
        self, boundary: str, blocksize: int = 4096, *, escape: EscapeMode = "quoted"
    ) -> Iterator[bytes]:
        """Yields the part in blocks: the header, the data ``blocksize`` bytes at a time, and
        the closing CRLF, calling ``cb(self, current, total)`` after each block."""
        total = (
            self.get_size(boundary, escape=escape)
            if self.filesize is not None or (self.value is not None)
            else None
        )
        current = 0

        def advance(block: bytes) -> None:
            nonlocal current
            current += len(block)
            if self.cb is not None:
                self.cb(self, current, total)

        if self.value is not None:
            block = self.encode(boundary, escape=escape)
            yield block
            advance(block)
            return
        header = self.encode_hdr(boundary, escape=escape)
        checker = self._data_checker(boundary)
        yield header
        advance(header)
        for block in self._iter_file(blocksize):
            checker.check(block)
            yield block
            advance(block)
        yield _poster_rs.PART_END
        advance(_poster_rs.PART_END)

    def _iter_file(self, blocksize: int) -> Iterator[bytes]:
        with self._data_file() as (fileobj, size):
            left = size
            while left is None or left > 0:
                block = fileobj.read(blocksize if left is None else min(blocksize, left))
                if not block:
                    break
                if left is not None:
                    left -= len(block)
                yield block

    def _rewind(self) -> None:
        """Puts a seekable file object back where the parameter was made, so the part's data
        is the same however often it is encoded."""
        if self._fileobj is not None and self._start is not None:
            self._fileobj.seek(self._start)


def _restore_param(cls: type[MultipartParam], fields: tuple[Any, ...]) -> MultipartParam:
    """The parameter ``MultipartParam.__reduce__`` describes."""
    name, value, filename, filetype, filesize, cb, headers, fileobj, path, start = fields
    param = cls(name, value)
    param.filename, param.filetype, param.filesize = filename, filetype, filesize
    param.cb, param.headers = cb, headers
    param._fileobj, param._path, param._start = fileobj, path, start
    return param


#: A form item: a ``(name, value)`` pair or a ``MultipartParam``.
FormItem = MultipartParam | tuple[str | bytes, Any]
#: What ``multipart_encode`` takes: a mapping of names to values, or a sequence of items.
Params = Mapping[str, Any] | Iterable[FormItem] | None


def _iter_items(params: Params) -> Iterable[Any]:
    if params is None:
        return ()
    if isinstance(params, Mapping):
        return params.items()
    if isinstance(params, (str, bytes)):
        raise TypeError("params must be a mapping or a sequence of (name, value) pairs")
    return params


def _file_name_of(fileobj: Any) -> str | None:
    name = getattr(fileobj, "name", None)
    if isinstance(name, (str, bytes)) and name:
        return os.path.basename(_display_path(name))
    return None


def _params_from_item(cls: type[MultipartParam], item: Any) -> list[MultipartParam]:
    if isinstance(item, MultipartParam):
        return [item]
    if isinstance(item, (str, bytes)):
        raise TypeError(
            f"form items must be (name, value) pairs or MultipartParam, not {item!r:.80}"
        )
    try:
        name, value = item
    except (TypeError, ValueError):
        raise TypeError(
            f"form items must be (name, value) pairs or MultipartParam, not {item!r:.80}"
        ) from None
    name = _text(name, "name")
    if isinstance(value, MultipartParam):
        if value.name != name:
            raise ValueError(f"MultipartParam named {value.name!r} given under the name {name!r}")
        return [value]
    if isinstance(value, list):
        return [p for element in value for p in _params_from_item(cls, (name, element))]
    if isinstance(value, tuple):
        return [_param_from_file_tuple(cls, name, value)]
    if isinstance(value, os.PathLike):
        return [cls.from_file(name, value)]
    if hasattr(value, "read"):
        filename = _file_name_of(value)
        filetype = mimetypes.guess_type(filename)[0] if filename else None
        return [cls(name, filename=filename, filetype=filetype, fileobj=value)]
    if value is None:
        raise TypeError(f"part {name!r} has no value (None)")
    return [cls(name, value)]


def _param_from_file_tuple(
    cls: type[MultipartParam], name: str, value: tuple[Any, ...]
) -> MultipartParam:
    """A requests-style ``(filename, data[, content_type[, headers]])`` value."""
    if not 2 <= len(value) <= 4:
        raise TypeError(
            f"part {name!r}: a tuple value must be (filename, data[, content_type[, headers]])"
        )
    filename, data, *rest = value
    filetype = rest[0] if rest else None
    headers = rest[1] if len(rest) > 1 else None
    if filetype is None and filename:
        filetype = mimetypes.guess_type(os.fsdecode(filename))[0]
    if isinstance(data, os.PathLike):
        param = cls._from_path(name, data, filetype)
        param.filename = None if filename is None else cls._filename_text(filename)
        param.headers = None if headers is None else cls._header_list(headers)
        return param
    if hasattr(data, "read"):
        return cls(name, filename=filename, filetype=filetype, fileobj=data, headers=headers)
    if isinstance(data, (str, bytes, bytearray, memoryview)):
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        return cls(
            name, filename=filename, filetype=filetype, fileobj=io.BytesIO(raw), headers=headers
        )
    raise TypeError(f"part {name!r}: unsupported file data {type(data).__name__}")


class _Normalizer:
    """Called by the core for every item it does not read itself (anything but a plain
    ``(str, str | bytes)`` pair or a ``MultipartParam`` without a callback); keeps the
    parameters whose progress has to be reported, by part index."""

    def __init__(self, params: dict[int, MultipartParam]) -> None:
        self.params = params

    def __call__(self, index: int, item: object) -> _poster_rs.Param | list[_poster_rs.Param]:
        params = _params_from_item(MultipartParam, item)
        for offset, param in enumerate(params):
            if param.cb is not None:
                self.params[index + offset] = param
        return params[0] if len(params) == 1 else [*params]


class _ProgressCallbacks:
    """Turns "bytes start..end were produced" into poster's callbacks."""

    def __init__(
        self,
        cb: Callback | None,
        params: dict[int, MultipartParam],
        starts: list[int],
        total: int | None,
    ) -> None:
        self.cb = cb
        self.params = params
        self.starts = starts
        self.total = total

    def __call__(self, start: int, end: int) -> None:
        starts, total, cb = self.starts, self.total, self.cb
        if not starts:  # unknown length: progress without parts
            if cb is not None:
                cb(None, end, None)
            return
        last = len(starts) - 1
        index = bisect.bisect_right(starts, start) - 1
        while 0 <= index < last and starts[index] < end:
            part_end = starts[index + 1]
            upto = min(end, part_end)
            param = self.params.get(index)
            if cb is not None:
                cb(param, upto, total)
            if param is not None and param.cb is not None:
                param.cb(param, upto - starts[index], part_end - starts[index])
            if part_end > end:
                break
            index += 1
        if end == total and cb is not None:
            cb(None, total, total)


def multipart_encode(
    params: Params,
    boundary: str | None = None,
    cb: Callback | None = None,
    *,
    escape: EscapeMode = "quoted",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    check_boundary: bool | None = None,
) -> tuple[MultipartStream | ChunkedMultipartStream, dict[str, str]]:
    """Encodes ``params`` as multipart/form-data and returns ``(stream, headers)``.

    ``params`` is a mapping or a sequence of ``(name, value)`` pairs and/or ``MultipartParam``s;
    a value is ``str``, ``bytes``, an ``int``, a binary file object, an ``os.PathLike`` (sent as
    the file at that path), a ``MultipartParam``, a list of values (repeated fields) or a
    requests-style ``(filename, data[, content_type[, headers]])`` tuple. Every file is
    measured now, none is read; a missing one raises here.

    ``headers`` holds ``Content-Type`` and, unless a part has an unknown size, the exact
    ``Content-Length``. ``boundary`` is validated against RFC 2046 (``BoundaryError``); by
    default one with 128 random bits is generated. In-memory values are always checked for the
    delimiter; file data is scanned as it streams when the boundary is yours (or
    ``check_boundary=True``), not for a generated one, which turns up in data with a
    probability below 2^-88 per terabyte. ``cb(param, current, total)`` is called as
    the body streams, last with ``param=None``. ``escape`` picks how names and filenames are
    escaped: ``"quoted"``, ``"html5"`` or ``"poster"``.
    """
    if cb is not None:
        param_list = MultipartParam.from_params(params)
        items: list[object] = list(param_list)
        # One part per parameter: the progress callback hears about each of them.
        normalize = _Normalizer(dict(enumerate(param_list)))
    else:
        source = _iter_items(params)
        items = source if type(source) is list else list(source)
        normalize = _Normalizer({})
    stream: MultipartStream | ChunkedMultipartStream = MultipartStream(
        items,
        normalize,
        guess_type=_guess_type_for_suffix,
        boundary=boundary,
        escape=escape,
        chunk_size=chunk_size,
        check_boundary=check_boundary,
    )
    if stream.total is None:
        # Same layout, no __len__: clients then send it chunked instead of trusting a length.
        stream.__class__ = ChunkedMultipartStream
    if cb is not None or normalize.params:
        stream._set_progress(
            _ProgressCallbacks(cb, normalize.params, stream.part_starts, stream.total)
        )
    headers = {"Content-Type": stream.content_type}
    if stream.total is not None:
        headers["Content-Length"] = str(stream.total)
    return stream, headers


def encode_string(
    boundary: str, name: str | bytes, value: Any, *, escape: EscapeMode = "quoted"
) -> bytes:
    """One text part: header, value, CRLF."""
    return MultipartParam(name, value).encode(boundary, escape=escape)


def encode_file_header(
    boundary: str,
    paramname: str | bytes,
    filesize: int,
    filename: Any = None,
    filetype: str | None = None,
    *,
    escape: EscapeMode = "quoted",
) -> bytes:
    """The header block of a file part."""
    param = MultipartParam(paramname, filesize=filesize, filename=filename, filetype=filetype)
    return param.encode_hdr(boundary, escape=escape)


def get_body_size(params: Params, boundary: str, *, escape: EscapeMode = "quoted") -> int:
    """The Content-Length of ``params`` encoded with ``boundary``, from file metadata only."""
    stream, _ = multipart_encode(params, boundary, escape=escape)
    with stream:
        if stream.total is None:
            raise ValueError("the body has a part of unknown size; it has no Content-Length")
        return stream.total


def get_headers(params: Params, boundary: str, *, escape: EscapeMode = "quoted") -> dict[str, str]:
    """``Content-Type`` and ``Content-Length`` headers for ``params`` encoded with ``boundary``."""
    stream, headers = multipart_encode(params, boundary, escape=escape)
    stream.close()
    return headers
