"""Redirects keep the client's promises (issue 10, client): a redirect to another origin (scheme,
host or port) drops ``Authorization``, ``Proxy-Authorization`` and ``Cookie``; a 307/308 from
https to http that would re-send the body is refused instead of sending it in clear text. The
TLS servers use a trustme CA, everything on 127.0.0.1."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from _servers import TLS, WerkzeugServer, check_upload
from poster_rs.streaminghttp import (
    StreamingHTTPHandler,
    StreamingHTTPRedirectHandler,
    StreamingHTTPSHandler,
)

pytest_plugins = ["_fixtures"]  # servers, payloads, TLS

TIMEOUT = 10
CREDENTIALS = {
    "Authorization": "Bearer secret-token",
    "Proxy-Authorization": "Basic cHJveHk6c2VjcmV0",
    "Cookie": "session=secret",
}
CREDENTIAL_NAMES = ("authorization", "proxy-authorization", "cookie")


@pytest.fixture
def second_https_server(tls: TLS) -> Iterator[WerkzeugServer]:
    with WerkzeugServer(ssl_context=tls.server_context) as server:
        yield server


def _opener(tls: TLS) -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(
        StreamingHTTPHandler(),
        StreamingHTTPRedirectHandler(),
        StreamingHTTPSHandler(context=tls.client_context),
    )


def _post(
    opener: urllib.request.OpenerDirector, url: str, payload: Any, method: str = "POST"
) -> tuple[int, dict[str, Any]]:
    stream, headers = payload.encode()
    request = urllib.request.Request(
        url, data=stream, headers={**headers, **CREDENTIALS}, method=method
    )
    with stream, opener.open(request, timeout=TIMEOUT) as response:
        return response.status, json.loads(response.read())


@pytest.mark.parametrize("code", [307, 308])
def test_https_to_http_with_a_body_is_refused(
    werkzeug_https_server: WerkzeugServer,
    werkzeug_server: WerkzeugServer,
    tls: TLS,
    small_payload: Any,
    code: int,
) -> None:
    target = werkzeug_server.url + "target"
    url = f"{werkzeug_https_server.url}redirect/{code}?to={target}"
    with pytest.raises(urllib.error.HTTPError) as info:
        _post(_opener(tls), url, small_payload)
    error = info.value
    assert error.code == code
    assert "refused" in str(error.reason)
    assert "clear text" in str(error.reason)
    assert error.headers["Location"] == target
    error.close()
    # The https server saw the upload, the http server nothing at all.
    assert len(werkzeug_https_server.requests) == 1
    assert werkzeug_server.requests == []


@pytest.mark.parametrize("code", [307, 308])
def test_another_port_drops_credentials_and_resends_the_body(
    werkzeug_https_server: WerkzeugServer,
    second_https_server: WerkzeugServer,
    tls: TLS,
    small_payload: Any,
    code: int,
) -> None:
    # Same scheme, same host, another port: another origin.
    target = second_https_server.url + "target"
    url = f"{werkzeug_https_server.url}redirect/{code}?to={target}"
    status, record = _post(_opener(tls), url, small_payload)
    assert status == 200
    first = werkzeug_https_server.requests[0]
    for name in CREDENTIAL_NAMES:
        assert name in first["headers"], first["headers"]
        assert name not in record["headers"], record["headers"]
    check_upload(record, small_payload)


def test_http_to_https_upgrade_drops_credentials_and_resends_the_body(
    werkzeug_server: WerkzeugServer,
    werkzeug_https_server: WerkzeugServer,
    tls: TLS,
    small_payload: Any,
) -> None:
    target = werkzeug_https_server.url + "target"
    status, record = _post(
        _opener(tls), f"{werkzeug_server.url}redirect/307?to={target}", small_payload
    )
    assert status == 200
    for name in CREDENTIAL_NAMES:
        assert name not in record["headers"], record["headers"]
    check_upload(record, small_payload)


def test_same_origin_keeps_credentials(
    werkzeug_https_server: WerkzeugServer, tls: TLS, small_payload: Any
) -> None:
    # The control: a redirect within the origin keeps every credential.
    target = werkzeug_https_server.url + "target"
    status, record = _post(
        _opener(tls), f"{werkzeug_https_server.url}redirect/307?to={target}", small_payload
    )
    assert status == 200
    for name, value in CREDENTIALS.items():
        assert record["headers"][name.lower()] == value
    check_upload(record, small_payload)


@pytest.mark.parametrize("code", [301, 302, 303])
def test_https_to_http_get_carries_neither_body_nor_credentials(
    werkzeug_https_server: WerkzeugServer,
    werkzeug_server: WerkzeugServer,
    tls: TLS,
    small_payload: Any,
    code: int,
) -> None:
    target = werkzeug_server.url + "target"
    url = f"{werkzeug_https_server.url}redirect/{code}?to={target}"
    status, record = _post(_opener(tls), url, small_payload)
    assert status == 200
    assert record["method"] == "GET"
    assert record["body_bytes"] == 0
    for name in CREDENTIAL_NAMES:
        assert name not in record["headers"], record["headers"]


def test_307_to_another_scheme_is_refused(
    werkzeug_server: WerkzeugServer, tls: TLS, small_payload: Any
) -> None:
    url = f"{werkzeug_server.url}redirect/307?to=ftp://127.0.0.1:1/upload"
    with pytest.raises(urllib.error.HTTPError) as info:
        _post(_opener(tls), url, small_payload)
    assert info.value.code == 307
    info.value.close()
    assert len(werkzeug_server.requests) == 1
