"""The fixtures of the upload tests (a pytest plugin: ``pytest_plugins = ["_fixtures"]``):
payloads on disk, a trustme CA, and servers from ``_servers`` started and always stopped."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from _servers import (
    TLS,
    AiohttpServer,
    MiB,
    Payload,
    ThreadedUploadServer,
    WerkzeugServer,
    make_payload,
)


@pytest.fixture(scope="session")
def payload(tmp_path_factory: pytest.TempPathFactory) -> Payload:
    """Four fields and three files: 650 bytes of text, 3 MiB and 9 MiB of random data (the body
    is over 8 MiB, so many 1 MiB chunks flow)."""
    return make_payload(tmp_path_factory.mktemp("payload"), (3 * MiB, 9 * MiB + 12345))


@pytest.fixture(scope="session")
def small_payload(tmp_path_factory: pytest.TempPathFactory) -> Payload:
    """The same fields with a 100 KiB file: for tests about headers, not about volume."""
    return make_payload(tmp_path_factory.mktemp("small"), (100 * 1024,))


@pytest.fixture(scope="session")
def zeros_20m(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sparse 20 MiB file, for bodies whose content does not matter."""
    path = tmp_path_factory.mktemp("sparse") / "zeros20m.bin"
    with open(path, "wb") as f:
        f.truncate(20 * MiB)
    return path


@pytest.fixture(scope="session")
def zeros_64m(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sparse") / "zeros64m.bin"
    with open(path, "wb") as f:
        f.truncate(64 * MiB)
    return path


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLS:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return TLS(ca, server_context, client_context, ca_file)


@pytest.fixture
def werkzeug_server() -> Iterator[WerkzeugServer]:
    with WerkzeugServer() as server:
        yield server


@pytest.fixture
def werkzeug_https_server(tls: TLS) -> Iterator[WerkzeugServer]:
    with WerkzeugServer(ssl_context=tls.server_context) as server:
        yield server


@pytest.fixture
def aiohttp_server() -> Iterator[AiohttpServer]:
    with AiohttpServer() as server:
        yield server


@pytest.fixture(params=["werkzeug", "aiohttp"])
def parsing_server(request: pytest.FixtureRequest) -> Iterator[WerkzeugServer | AiohttpServer]:
    """werkzeug and aiohttp.web, in turn."""
    server = WerkzeugServer() if request.param == "werkzeug" else AiohttpServer()
    with server:
        yield server


@pytest.fixture
def upload_server() -> Iterator[ThreadedUploadServer]:
    with ThreadedUploadServer() as server:
        yield server
