"""Where ``poster-rs serve`` stores uploaded files: one directory, opened once.

Every file is created relative to the directory's descriptor with
``O_CREAT | O_EXCL | O_NOFOLLOW``, under a name that is a single path component. So nothing a
local user does to the directory (planting a symlink under the next name, swapping the
directory's own path for a symlink) can make the server write outside it or overwrite a file:
a name that exists in any form, a dangling symlink included, is skipped for the next free one.
"""

from __future__ import annotations

import collections
import contextlib
import os
import random
import re
import threading
import unicodedata

__all__ = ["UploadDirectory", "safe_filename"]

#: Longest stored name, in bytes of UTF-8 (most file systems allow 255).
NAME_MAX = 200
#: Sequential suffixes tried (``name-1.ext`` ...) before random ones.
SEQUENTIAL_TRIES = 1000
RANDOM_TRIES = 100
#: Names whose next free suffix is remembered.
SUFFIX_HINTS = 4096

#: ASCII characters kept in stored names; any other ASCII character becomes ``_``.
_ASCII_UNSAFE = re.compile(r"[^A-Za-z0-9_.\- ()+,=@\[\]]")
#: Invisible characters that reorder how a name is displayed (a "txt.exe" shown as "exe.txt").
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
#: Unicode categories dropped from names: controls, surrogates, private use, unassigned.
_DROPPED = frozenset(("Cc", "Cs", "Co", "Cn"))


def _store_char(ch: str) -> str:
    if ch < "\x80":
        return "" if ch < " " or ch == "\x7f" else _ASCII_UNSAFE.sub("_", ch)
    category = unicodedata.category(ch)
    if category in _DROPPED or ch in _BIDI_CONTROLS:
        return ""
    # Line and paragraph separators and exotic spaces: visible as a plain "_".
    return "_" if category[0] == "Z" else ch


def safe_filename(filename: str | None) -> str:
    """A file name that cannot leave its directory: the last path component (``/`` or ``\\``),
    NFC-normalised, its characters kept (letters of every script, emoji, joiners) except control
    and bidirectional-override characters (dropped), ASCII punctuation outside a conservative
    set and non-ASCII spaces (``_``); never ``.``/``..``, never empty, at most 200 bytes of
    UTF-8."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFC", name)
    name = "".join(map(_store_char, name)).strip(" .")
    if not name:
        name = "upload"
    while len(name.encode("utf-8")) > NAME_MAX:
        name = name[:-1]
    # Cutting may leave a lone combining mark or a trailing dot.
    return unicodedata.normalize("NFC", name).strip(" .") or "upload"


#: A new file, never an existing one, never through a symlink.
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _with_suffix(stem: str, ext: str, suffix: str) -> str:
    """``stem + suffix + "." + ext``, the stem shortened to keep the name within NAME_MAX."""
    room = NAME_MAX - len(suffix.encode()) - (len(ext.encode()) + 1 if ext else 0)
    while len(stem.encode()) > room:
        stem = stem[:-1]
    return f"{stem}{suffix}.{ext}" if ext else f"{stem}{suffix}"


class UploadDirectory:
    """The storage directory, held open by descriptor for the server's lifetime."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        os.makedirs(self.path, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        # The next suffix to try for recently used names, so that the n-th upload of one name
        # does not probe n taken names first. Bounded: a hint, not a record of uploads.
        self._next_suffix: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._lock = threading.Lock()

    def create(self, filename: str | None) -> tuple[str, int]:
        """Creates a new empty file for ``filename``; returns its stored name and a descriptor
        open for writing. Blocks on the file system: call it off the event loop."""
        base = safe_filename(filename)
        stem, dot, ext = base.rpartition(".")
        if not dot or not stem:
            stem, ext = base, ""
        with self._lock:
            hint = self._next_suffix.get(base, 0)
        for attempt in range(SEQUENTIAL_TRIES + RANDOM_TRIES):
            if attempt < SEQUENTIAL_TRIES:
                counter = hint + attempt
            else:
                # So many taken names in a row: a random suffix finds a free one at once.
                counter = random.randrange(SEQUENTIAL_TRIES, 10**9)
            candidate = base if counter == 0 else _with_suffix(stem, ext, f"-{counter}")
            try:
                fd = os.open(candidate, _CREATE, 0o644, dir_fd=self.fd)
            except FileExistsError:
                continue
            with self._lock:
                self._next_suffix[base] = counter + 1
                self._next_suffix.move_to_end(base)
                if len(self._next_suffix) > SUFFIX_HINTS:
                    self._next_suffix.popitem(last=False)
            return candidate, fd
        raise FileExistsError(f"no free name for {base!r} after {attempt + 1} tries")

    def remove(self, name: str) -> None:
        """Removes a file this server created (an upload that did not complete)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
