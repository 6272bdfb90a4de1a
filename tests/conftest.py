from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

MiB = 1 << 20


class DataFiles:
    """Real files shared by the whole session (never modified by a test)."""

    def __init__(self, root: Path) -> None:
        rng = random.Random(20110416)
        self.root = root
        self.text = root / "hello.txt"
        self.text.write_bytes(b"hello world")
        self.empty = root / "empty.bin"
        self.empty.write_bytes(b"")
        self.medium = root / "medium.dat"
        self.medium.write_bytes(rng.randbytes(200_000))
        self.big = root / "big.bin"
        self.big.write_bytes(rng.randbytes(3 * MiB))


@pytest.fixture(scope="session")
def data_files(tmp_path_factory: pytest.TempPathFactory) -> DataFiles:
    return DataFiles(tmp_path_factory.mktemp("data"))


@pytest.fixture
def fd_baseline():
    """The number of open descriptors before the test; the test asserts on it."""
    import gc

    gc.collect()
    return len(os.listdir("/proc/self/fd"))


def pytest_configure(config: pytest.Config) -> None:
    # When a hypothesis test fails, its pytest plugin formats the report through a module that
    # imports mypy_extensions.TypedDict; with filterwarnings=error that DeprecationWarning turns
    # the failure report into an INTERNALERROR.
    config.addinivalue_line(
        "filterwarnings",
        "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning",
    )
