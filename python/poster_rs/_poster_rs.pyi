"""The compiled core of poster_rs (Rust, PyO3)."""

from collections.abc import Callable, Sequence
from typing import Any, Protocol

__version__: str

class BoundaryError(ValueError):
    """The boundary is invalid, or the multipart delimiter occurs in a part's data."""

class FileChangedError(OSError):
    """A file changed between building the body and streaming it."""

class NotSeekableError(OSError):
    """The body cannot move to that position."""

class _Socket(Protocol):
    def fileno(self) -> int: ...
    def gettimeout(self) -> float | None: ...

class Stream:
    def __new__(
        cls,
        items: list[Any],
        normalize: Callable[[int, Any], Any],
        *,
        boundary: str | None = None,
        escape: str = "quoted",
        chunk_size: int = 1048576,
        check_boundary: bool | None = None,
        guess_type: Callable[[str], str | None] | None = None,
    ) -> Stream: ...
    def __iter__(self) -> Stream: ...
    def __next__(self) -> bytes: ...
    def _read(self, size: int = -1) -> bytes: ...
    @property
    def total(self) -> int | None: ...
    @property
    def current(self) -> int: ...
    def tell(self) -> int: ...
    def seek(self, offset: int, whence: int = 0) -> int: ...
    def reset(self) -> None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def boundary(self) -> str: ...
    @property
    def content_type(self) -> str: ...
    @property
    def chunk_size(self) -> int: ...
    def send_to(
        self,
        sock: _Socket | int,
        *,
        deadline: float | None = None,
        use_sendfile: bool = False,
        chunked: bool | None = None,
        buffer_size: int = 262144,
    ) -> tuple[bool, bytes]:
        """Sends the body from its position to its end into a connected socket, from native
        code with the GIL released; returns whether all went out and what the server said."""
    def _set_progress(self, progress: Callable[[int, int], object] | None) -> None: ...
    @property
    def part_starts(self) -> list[int]: ...

def render_header(
    boundary: str,
    name: str,
    filename: str | None = None,
    content_type: str | None = None,
    headers: Sequence[tuple[str, str]] | None = None,
    *,
    escape: str = "quoted",
    is_file: bool = False,
) -> bytes: ...
def gen_boundary() -> str: ...
def validate_boundary(boundary: str) -> None: ...
def content_type_for(boundary: str) -> str: ...
def find_delimiter(boundary: str, data: bytes) -> int | None: ...
def strip_interim(data: bytes) -> tuple[bytes, bool]: ...
