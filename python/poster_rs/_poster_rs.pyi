"""The compiled core of poster_rs (Rust, PyO3). Checked against the module by mypy.stubtest."""

from collections.abc import Callable
from typing import Any, BinaryIO, Final, Literal, Protocol, Self, TypeAlias, final

from typing_extensions import disjoint_base

__all__ = [
    "PART_END",
    "DataChecker",
    "FormParser",
    "Param",
    "Sha256",
    "Stream",
    "__version__",
    "content_type_for",
    "form_boundary",
    "gen_boundary",
    "measure_file",
    "strip_interim",
    "validate_boundary",
]

__version__: str

#: How names and filenames are escaped; converted to the core's enum where it is passed in.
_EscapeMode: TypeAlias = Literal["quoted", "html5", "poster"]

#: The CRLF that ends every part's data.
PART_END: Final[bytes]

class _ParamFields(Protocol):
    """What ``Param._normalize_arguments`` returns; the constructor reads it by attribute."""

    @property
    def name(self) -> str: ...
    @property
    def value(self) -> str | bytes | None: ...
    @property
    def filename(self) -> str | None: ...
    @property
    def filetype(self) -> str | None: ...
    @property
    def filesize(self) -> int | None: ...
    @property
    def fileobj(self) -> BinaryIO | None: ...
    @property
    def start(self) -> int | None:
        """Where the file object's data begins."""
    @property
    def headers(self) -> list[tuple[str, str]] | None: ...

@disjoint_base
class Param:
    """One part's description, read by the encoder without calling Python."""

    name: str
    filename: str | None
    filetype: str | None
    filesize: int | None
    cb: Callable[[Any, int, Any], object] | None
    headers: list[tuple[str, str]] | None
    _fileobj: BinaryIO | None
    _path: str | bytes | None
    _start: int | None
    # The arguments are taken by __new__; __init__ only decides on cycle-collector tracking.
    # Declared once, as __init__ (whose runtime signature is the class's).
    def __init__(
        self,
        name: str | bytes,
        value: Any = None,
        filename: Any = None,
        filetype: str | None = None,
        filesize: int | None = None,
        fileobj: BinaryIO | None = None,
        cb: Callable[[Any, int, Any], object] | None = None,
        *,
        headers: Any = None,
    ) -> None: ...
    @classmethod
    def _normalize_arguments(
        cls,
        name: Any,
        value: Any,
        filename: Any,
        filetype: Any,
        filesize: Any,
        fileobj: Any,
        headers: Any,
    ) -> _ParamFields: ...
    @property
    def value(self) -> str | bytes | None: ...
    @value.setter
    def value(self, value: str | bytes | None) -> None: ...
    def encode_hdr(self, boundary: str, *, escape: _EscapeMode = "quoted") -> bytes: ...
    def get_size(self, boundary: str, *, escape: _EscapeMode = "quoted") -> int: ...
    def _encode(
        self, boundary: str, data: bytes | None = None, *, escape: _EscapeMode = "quoted"
    ) -> bytes: ...
    def _data_checker(self, boundary: str) -> DataChecker: ...

@final
class DataChecker:
    """Scans a part's data block by block for the multipart delimiter."""

    def check(self, block: bytes) -> None: ...

#: What ``FormParser.feed`` reports: a part's ``(name, value)`` header lines where it starts,
#: its data, ``None`` where it ends.
_FormEvent: TypeAlias = list[tuple[bytes, bytes]] | bytes | None

@final
class FormParser:
    """The core's streaming multipart/form-data parser. Errors are ``ValueError(message,
    is_limit)``: ``is_limit`` is true for a body over ``max_parts`` or ``max_part_header``."""

    def __new__(cls, boundary: bytes, max_parts: int, max_part_header: int) -> Self: ...
    def feed(self, chunk: bytes) -> list[_FormEvent]: ...
    def finish(self) -> None: ...
    @property
    def complete(self) -> bool: ...

@final
class Sha256:
    """SHA-256 hashing many buffers with the GIL released once."""

    def __new__(cls) -> Self: ...
    def update_all(self, pieces: list[bytes]) -> None: ...
    def update_later(self, pieces: list[bytes]) -> None: ...
    def hexdigest(self) -> str: ...

class _Socket(Protocol):
    def fileno(self) -> int: ...
    def gettimeout(self) -> float | None: ...

@disjoint_base
class Stream:
    def __new__(
        cls,
        items: list[Any],
        normalize: Callable[[int, Any], Param | list[Param]],
        *,
        boundary: str | None = None,
        escape: _EscapeMode = "quoted",
        chunk_size: int = 1048576,
        check_boundary: bool | None = None,
        guess_type: Callable[[str], str | None] | None = None,
    ) -> Self: ...
    def __iter__(self) -> Self: ...
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
        buffer_size: int = 2097152,
        head: bytes | None = None,
    ) -> tuple[bool, bytes]:
        """Sends the body from its position to its end into a connected socket, from native
        code with the GIL released; returns whether all went out and what the server said."""
    def _set_progress(self, progress: Callable[[int, int], object] | None) -> None: ...
    @property
    def part_starts(self) -> list[int]: ...

def gen_boundary() -> str: ...
def validate_boundary(boundary: str) -> None: ...
def form_boundary(content_type: bytes) -> bytes | None: ...
def content_type_for(boundary: str) -> str: ...
def measure_file(part: str, path: str | bytes) -> int: ...
def strip_interim(data: bytes) -> tuple[bytes, bool]: ...
