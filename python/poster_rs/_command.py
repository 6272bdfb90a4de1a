"""The ``poster-rs`` entry point: checks that the ``cli`` extra is installed before loading the
command, so a library-only install gets a one-line answer instead of a traceback."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

from . import _exitcodes as exitcodes

# Import name -> distribution name of everything in the `cli` extra (pyproject.toml); a test
# compares this with the installed package's metadata, so the two cannot drift apart.
CLI_MODULES = {
    "tqdm": "tqdm",
    "aiohttp": "aiohttp",
    "uvloop": "uvloop",
}

INSTALL_HINT = "pip install 'poster-rs[cli]'"


def missing_distributions() -> list[str]:
    """The `cli` extra's distributions whose modules cannot be imported."""
    return [
        dist for module, dist in CLI_MODULES.items() if importlib.util.find_spec(module) is None
    ]


def _refuse(missing: Sequence[str]) -> int:
    print(
        f"poster-rs: the command needs {', '.join(missing)}, not installed here "
        f"(the library itself needs nothing).\nInstall the command's dependencies with: "
        f"{INSTALL_HINT}",
        file=sys.stderr,
    )
    return exitcodes.USAGE  # the command cannot run as installed, like a usage error


def main(argv: Sequence[str] | None = None) -> int:
    missing = missing_distributions()
    if missing:
        return _refuse(missing)
    try:
        from .cli import main as cli_main  # noqa: PLC0415 - only once its dependencies exist
    except ModuleNotFoundError as exc:
        # A dependency added to the command but not yet to CLI_MODULES.
        if exc.name is None or exc.name.partition(".")[0] == __package__:
            raise
        return _refuse([exc.name.partition(".")[0]])
    return cli_main(argv)
