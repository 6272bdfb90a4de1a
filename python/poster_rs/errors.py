"""The exceptions poster_rs raises for its own reasons, all under ``PosterError``.

Each also subclasses the standard exception a caller would catch without knowing poster_rs
(``BoundaryError`` is a ``ValueError``, ``FileChangedError`` an ``OSError``, ...). They are
defined in Python, with module ``poster_rs``, so that they pickle by reference: a process pool
or Dask worker that raises one hands the caller the same exception, attributes included. The
compiled core raises these very classes.
"""

from __future__ import annotations

__all__ = [
    "BoundaryError",
    "FileChangedError",
    "HeaderError",
    "NotARegularFileError",
    "NotSeekableError",
    "PosterError",
]


class PosterError(Exception):
    """Base class of every exception poster_rs raises for its own reasons.

    ``part`` is the field name of the part concerned, when there is one.
    """

    __module__ = "poster_rs"
    part: str | None = None


class BoundaryError(PosterError, ValueError):
    """The boundary is invalid, or the multipart delimiter occurs in a part's data (then
    ``offset`` is where, in bytes from the start of the part's data)."""

    __module__ = "poster_rs"
    offset: int | None = None


class HeaderError(PosterError, ValueError):
    """A part header cannot be sent safely (CR, LF or NUL in a value, a name that is not an
    RFC 9110 token, an attempt to override ``Content-Disposition``)."""

    __module__ = "poster_rs"


class NotARegularFileError(PosterError, ValueError):
    """A path given as a file part is a FIFO, socket or device; pass an open file object to
    stream it with chunked transfer instead. (A directory raises ``IsADirectoryError``.)"""

    __module__ = "poster_rs"


class FileChangedError(PosterError, OSError):
    """A file changed (size or identity) between building the body and streaming it; the body
    would disagree with its Content-Length, so streaming stops."""

    __module__ = "poster_rs"


class NotSeekableError(PosterError, OSError):
    """The body cannot move to that position (a reader of unknown size or one that cannot
    rewind)."""

    __module__ = "poster_rs"
