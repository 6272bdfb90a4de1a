"""The workloads: random incompressible files made once in a data directory and reused.

A workload is described by a JSON file (fields, files with their SHA-256, the parts a correct
body holds) that the orchestrator writes and every case process loads before it starts timing.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import string
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .verify import Part

MiB = 1 << 20
GiB = 1 << 30
FILE_TYPE = "application/octet-stream"


@dataclass
class FileSpec:
    name: str  # the form field name
    path: str
    size: int
    sha256: str

    @property
    def filename(self) -> str:
        return os.path.basename(self.path)


@dataclass
class Workload:
    name: str
    label: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    files: list[FileSpec] = field(default_factory=list)

    @property
    def payload(self) -> int:
        """Bytes of user data (file contents and field values): the throughput numerator."""
        return sum(f.size for f in self.files) + sum(len(v.encode()) for _, v in self.fields)

    def expected_parts(self) -> list[Part]:
        """Every encoder gets the fields first, then the files, and must keep that order."""
        parts: list[Part] = []
        for name, value in self.fields:
            data = value.encode()
            parts.append((name, None, len(data), hashlib.sha256(data).hexdigest()))
        parts.extend((f.name, f.filename, f.size, f.sha256) for f in self.files)
        return parts

    def save(self, path: Path) -> None:
        data = asdict(self)
        path.write_text(json.dumps(data))

    @classmethod
    def load(cls, path: str | Path) -> Workload:
        data = json.loads(Path(path).read_text())
        return cls(
            name=data["name"],
            label=data["label"],
            fields=[(k, v) for k, v in data["fields"]],
            files=[FileSpec(**f) for f in data["files"]],
        )


@dataclass(frozen=True)
class Scale:
    big: int
    files_count: int
    files_size: int
    fields_count: int
    meta_count: int


FULL = Scale(big=GiB, files_count=1000, files_size=MiB, fields_count=100_000, meta_count=10_000)
QUICK = Scale(
    big=128 * MiB, files_count=100, files_size=MiB, fields_count=10_000, meta_count=10_000
)

WORKLOADS = ("big", "files1000", "fields100k", "meta10k")


def _size_text(n: int) -> str:
    if n >= GiB and n % GiB == 0:
        return f"{n // GiB} GiB"
    if n >= MiB:
        return f"{n / MiB:g} MiB"
    return f"{n / 1024:g} KiB"


class DataDir:
    """Random files under ``root``, reused when present with the right size. SHA-256 values
    are cached in ``manifest.json`` keyed by path, size and mtime."""

    def __init__(self, root: Path, log: Any = print) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.manifest_path = root / "manifest.json"
        try:
            self.manifest: dict[str, Any] = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError):
            self.manifest = {}
        self._rng = random.Random(7)

    def save(self) -> None:
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.manifest))
        tmp.replace(self.manifest_path)

    def random_file(self, path: Path, size: int) -> FileSpec:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            st = path.stat()
        except FileNotFoundError:
            st = None
        if st is None or st.st_size != size:
            tmp = path.with_name(path.name + ".tmp")
            with open(tmp, "wb") as f:
                left = size
                while left:
                    n = min(left, 4 * MiB)
                    f.write(os.urandom(n))
                    left -= n
            tmp.replace(path)
            st = path.stat()
        key = str(path)
        entry = self.manifest.get(key)
        if not entry or entry["size"] != st.st_size or entry["mtime_ns"] != st.st_mtime_ns:
            h = hashlib.sha256()
            with open(path, "rb", buffering=0) as f:
                buf = bytearray(4 * MiB)
                view = memoryview(buf)
                while n := f.readinto(buf):
                    h.update(view[:n])
            entry = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": h.hexdigest()}
            self.manifest[key] = entry
        return FileSpec(name="", path=key, size=size, sha256=entry["sha256"])

    def fields(self, count: int) -> list[tuple[str, str]]:
        rng = random.Random(100_000 + count)
        alphabet = string.ascii_letters + string.digits
        return [(f"field{i:06d}", "".join(rng.choices(alphabet, k=20))) for i in range(count)]

    def build(self, name: str, scale: Scale) -> Workload:
        started = time.monotonic()
        if name == "big":
            spec = self.random_file(self.root / f"big-{scale.big}.bin", scale.big)
            spec.name = "upload"
            wl = Workload(name, f"big: 1 file of {_size_text(scale.big)}", files=[spec])
        elif name == "files1000":
            folder = self.root / f"files-{scale.files_count}x{scale.files_size}"
            files = []
            for i in range(scale.files_count):
                spec = self.random_file(folder / f"f{i:04d}.bin", scale.files_size)
                spec.name = f"upload{i:04d}"
                files.append(spec)
            wl = Workload(
                name,
                f"files1000: {scale.files_count} files of {_size_text(scale.files_size)}",
                files=files,
            )
        elif name == "fields100k":
            spec = self.random_file(self.root / "small-4096.bin", 4096)
            spec.name = "upload"
            wl = Workload(
                name,
                f"fields100k: {scale.fields_count:,} fields of 20 B + 1 file of 4 KiB",
                fields=self.fields(scale.fields_count),
                files=[spec],
            )
        elif name == "meta10k":
            folder = self.root / f"meta-{scale.meta_count}"
            files = []
            for i in range(scale.meta_count):
                spec = self.random_file(folder / f"m{i:05d}.bin", 64)
                spec.name = f"upload{i:05d}"
                files.append(spec)
            wl = Workload(
                name,
                f"meta10k: Content-Length of {scale.meta_count:,} file parts of 64 B",
                files=files,
            )
        else:
            raise ValueError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
        self.save()
        elapsed = time.monotonic() - started
        if elapsed > 1:
            self.log(f"  data for {name} ready in {elapsed:.1f} s")
        return wl


def warm(wl: Workload) -> float:
    """Reads every file of ``wl`` once so it sits in the page cache; returns the seconds."""
    started = time.perf_counter()
    buf = bytearray(MiB)
    for f in wl.files:
        with open(f.path, "rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass
    return time.perf_counter() - started


def evict(wl: Workload) -> None:
    """Drops ``wl``'s files from the page cache (clean pages only; no root needed)."""
    for f in wl.files:
        fd = os.open(f.path, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
