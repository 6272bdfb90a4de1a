"""poster's ``version`` tuple, derived from the package version without ever failing the import."""

from __future__ import annotations

import re

_RELEASE = re.compile(r"\d+(?:\.\d+)*")


def release_tuple(text: str) -> tuple[int, ...]:
    """The numeric release part of a version string, at most three numbers.

    ``"0.8.1"`` → ``(0, 8, 1)``; pre-releases and local builds keep only their release part
    (``"1.2.0-rc.1"`` and ``"1.2.0rc1"`` → ``(1, 2, 0)``, ``"2.0"`` → ``(2, 0)``), and a string
    that does not start with a number gives ``()`` instead of raising at import time.
    """
    match = _RELEASE.match(text.strip().removeprefix("v"))
    if match is None:
        return ()
    return tuple(int(number) for number in match.group().split(".")[:3])
