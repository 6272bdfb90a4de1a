"""How poster_rs is installed: no runtime dependencies, the ``poster-rs`` command without its
``cli`` extra, the version tuple and the shipped metadata (issue 11)."""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import poster_rs
import pytest
from poster_rs._command import CLI_MODULES, INSTALL_HINT
from poster_rs._version import release_tuple

# Every module an optional dependency could provide: the library must import and work without
# any of them (aiohttp is what the receiving server may use; python-multipart is the tests'
# reference parser).
OPTIONAL_MODULES = [*CLI_MODULES, "aiohttp", "multipart", "python_multipart"]
BLOCK = f"import sys; sys.modules.update(dict.fromkeys({OPTIONAL_MODULES!r}))"
TIMEOUT = 60


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.8.1", (0, 8, 1)),
        ("1.2.0-rc.1", (1, 2, 0)),
        ("1.2.0rc1", (1, 2, 0)),
        ("2.0", (2, 0)),
        ("3", (3,)),
        ("1.2.3.4", (1, 2, 3)),
        ("1.0.0+local.7", (1, 0, 0)),
        ("v1.4.2", (1, 4, 2)),
        ("dev", ()),
        ("", ()),
    ],
)
def test_version_tuple_never_fails(text: str, expected: tuple[int, ...]) -> None:
    assert release_tuple(text) == expected


def test_version_matches_package_version() -> None:
    assert poster_rs.version == release_tuple(md.version("poster-rs"))
    assert poster_rs.version[:1] != ()


def test_library_imports_and_encodes_without_optional_dependencies() -> None:
    code = BLOCK + textwrap.dedent(
        """
        import poster_rs, poster_rs.streaminghttp, poster_rs.ship, poster_rs.encode
        stream, headers = poster_rs.multipart_encode({"a": "b"}, boundary="XyZ")
        body = b"".join(stream)
        assert len(body) == int(headers["Content-Length"]), headers
        loaded = sorted(
            m for m, v in sys.modules.items() if v is not None and m.partition(".")[0] in {optional}
        )
        assert not loaded, loaded
        print("ok")
        """
    ).replace("{optional}", repr(set(OPTIONAL_MODULES)))
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_commands_that_do_not_serve_do_not_import_the_server() -> None:
    """aiohttp and the server cost ~0.2 s of every ``poster-rs post``/``ship`` start-up
    (a third of a 10,000-file batched ship) when imported at the top of the CLI."""
    code = textwrap.dedent(
        """
        import sys
        import poster_rs.cli
        loaded = sorted(m for m in ("aiohttp", "poster_rs.server", "asyncio") if m in sys.modules)
        assert not loaded, loaded
        print("ok")
        """
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def check_refusal(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert INSTALL_HINT in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("blocked", [*CLI_MODULES, "all"])
@pytest.mark.parametrize("command", ["demo", "serve", "post"])
def test_command_without_cli_extra_says_what_to_install(blocked: str, command: str) -> None:
    modules = list(CLI_MODULES) if blocked == "all" else [blocked]
    code = (
        f"import sys, runpy; sys.modules.update(dict.fromkeys({modules!r})); "
        "sys.argv[0] = 'poster-rs'; runpy.run_module('poster_rs', run_name='__main__')"
    )
    result = run_python(code, command)
    check_refusal(result)
    for module in modules:
        assert CLI_MODULES[module] in result.stderr


def test_console_script_without_cli_extra(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "poster-rs"
    if not script.exists():
        pytest.skip(f"no poster-rs console script next to {sys.executable}")
    # sitecustomize runs before the entry point: the closest thing to an environment that
    # lacks the packages.
    (tmp_path / "sitecustomize.py").write_text(BLOCK + "\n")
    result = subprocess.run(
        [str(script), "demo"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        env={"PYTHONPATH": str(tmp_path), "PATH": str(script.parent)},
    )
    check_refusal(result)


def test_command_still_runs_with_cli_extra() -> None:
    result = run_python(
        "import runpy, sys; runpy.run_module('poster_rs', run_name='__main__')", "--version"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"poster-rs {poster_rs.__version__}"


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group()).lower()


def extra_of(requirement: str) -> str | None:
    match = re.search(r"""extra\s*==\s*['"]([^'"]+)['"]""", requirement)
    return match.group(1) if match else None


def test_no_runtime_dependencies_and_cli_extra_matches_the_check() -> None:
    requirements = md.requires("poster-rs") or []
    unconditional = [r for r in requirements if extra_of(r) is None]
    assert unconditional == [], "the library must not depend on anything"
    cli = {requirement_name(r) for r in requirements if extra_of(r) == "cli"}
    assert cli == set(CLI_MODULES.values())
    test = {requirement_name(r) for r in requirements if extra_of(r) == "test"}
    assert "poster-rs" in test, "the test extra pulls in the cli extra"


def test_metadata_license_and_urls() -> None:
    dist = md.distribution("poster-rs")
    files = [str(f) for f in dist.files or []]
    assert any(f.endswith("licenses/LICENSE") for f in files), files
    license_text = next(f for f in dist.files or [] if str(f).endswith("licenses/LICENSE"))
    assert "MIT License" in license_text.read_text()
    urls = dict(u.split(", ", 1) for u in dist.metadata.get_all("Project-URL") or [])
    assert urls["Repository"].startswith("https://github.com/")
    assert all("example.invalid" not in url for url in urls.values())
    classifiers = dist.metadata.get_all("Classifier") or []
    assert "Operating System :: POSIX :: Linux" in classifiers
    assert "Programming Language :: Python :: 3.11" in classifiers


@pytest.mark.skipif(
    not os.environ.get("POSTER_RS_TEST_INSTALLED"),
    reason="checked when scripts/test-wheel runs the suite against an installed wheel",
)
def test_suite_runs_against_the_installed_wheel_without_rust() -> None:
    where = Path(poster_rs.__file__).resolve()
    site = Path(sysconfig.get_paths()["platlib"]).resolve()
    assert where.is_relative_to(site), f"poster_rs imported from {where}, not {site}"
    assert shutil.which("cargo") is None
    assert shutil.which("rustc") is None
