"""One upload example per Python HTTP client (issue 3, point 2), each run against werkzeug and
aiohttp.web parsing the body, checking every field and the SHA-256 of every file.

The ``upload_with_*`` functions are the README's examples: keep them minimal and idiomatic.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import httpx
import pytest
import requests
import urllib3
from _servers import TIMEOUT, check_upload
from poster_rs import multipart_encode
from poster_rs.streaminghttp import register_openers

pytest_plugins = ["_fixtures"]  # servers, payloads, TLS

# --- the examples -------------------------------------------------------------------------------


def upload_with_requests(url: str, params: Any) -> Any:
    stream, headers = multipart_encode(params)
    with stream:
        response = requests.post(url, data=stream, headers=headers, timeout=TIMEOUT)
    response.raise_for_status()
    return response.json()


def upload_with_httpx(url: str, params: Any) -> Any:
    stream, headers = multipart_encode(params)
    with stream:
        response = httpx.post(url, content=stream, headers=headers, timeout=TIMEOUT)
    response.raise_for_status()
    return response.json()


async def upload_with_httpx_async(url: str, params: Any) -> Any:
    stream, headers = multipart_encode(params)
    with stream:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            # aiter(): AsyncClient refuses objects that are also sync-iterable.
            response = await client.post(url, content=aiter(stream), headers=headers)
    response.raise_for_status()
    return response.json()


async def upload_with_aiohttp(url: str, params: Any) -> Any:
    stream, headers = multipart_encode(params)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    with stream:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, data=stream, headers=headers) as response,
        ):
            response.raise_for_status()
            return await response.json()


def upload_with_urllib3(url: str, params: Any) -> Any:
    stream, headers = multipart_encode(params)
    http = urllib3.PoolManager(timeout=TIMEOUT)
    with stream:
        response = http.request("POST", url, body=stream, headers=headers)
    assert response.status == 200, response.data
    return response.json()


def upload_with_http_client(url: str, params: Any) -> Any:
    stream, headers = multipart_encode(params)
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        with stream:
            conn.request("POST", parts.path, body=stream, headers=headers)
        response = conn.getresponse()
        assert response.status == 200
        return json.loads(response.read())
    finally:
        conn.close()


def upload_with_urllib(url: str, params: Any) -> Any:
    register_openers()
    stream, headers = multipart_encode(params)
    request = urllib.request.Request(url, data=stream, headers=headers)
    with stream, urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return json.loads(response.read())


CLIENTS: dict[str, Callable[[str, Any], Any]] = {
    "requests": upload_with_requests,
    "httpx": upload_with_httpx,
    "httpx-async": lambda url, params: asyncio.run(upload_with_httpx_async(url, params)),
    "aiohttp": lambda url, params: asyncio.run(upload_with_aiohttp(url, params)),
    "urllib3": upload_with_urllib3,
    "http.client": upload_with_http_client,
    "urllib": upload_with_urllib,
}


@pytest.fixture(autouse=True)
def _restore_global_opener() -> Iterator[None]:
    yield
    urllib.request.install_opener(None)


@pytest.mark.parametrize("client", list(CLIENTS))
def test_client_upload(client: str, parsing_server: Any, payload: Any) -> None:
    stream, _ = multipart_encode(payload.params())
    with stream:
        total = len(stream)
    record = CLIENTS[client](parsing_server.url + "upload", payload.params())
    check_upload(record, payload)
    assert record["method"] == "POST"
    # Every client streams with the exact Content-Length: never chunked.
    assert record["headers"]["content-length"] == str(total)
    assert "transfer-encoding" not in record["headers"]
    assert record["body_bytes"] == total
    assert len(parsing_server.requests) == 1


# --- redirects with requests --------------------------------------------------------------------


@pytest.mark.parametrize("code", [307, 308])
def test_requests_rewinds_on_307_308(werkzeug_server: Any, payload: Any, code: int) -> None:
    target = werkzeug_server.url + "target"
    url = f"{werkzeug_server.url}redirect/{code}?to={target}"
    stream, headers = multipart_encode(payload.params())
    with stream:
        response = requests.post(url, data=stream, headers=headers, timeout=TIMEOUT)
        total = len(stream)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [code]
    first, second = werkzeug_server.requests
    assert first["body_bytes"] == total
    assert second["method"] == "POST"
    assert second["headers"]["content-length"] == str(total)
    check_upload(second, payload)


def test_requests_turns_303_into_get(werkzeug_server: Any, small_payload: Any) -> None:
    target = werkzeug_server.url + "target"
    stream, headers = multipart_encode(small_payload.params())
    with stream:
        response = requests.post(
            f"{werkzeug_server.url}redirect/303?to={target}",
            data=stream,
            headers=headers,
            timeout=TIMEOUT,
        )
    assert response.status_code == 200
    second = werkzeug_server.requests[1]
    assert second["method"] == "GET"
    assert second["body_bytes"] == 0
    assert "content-length" not in second["headers"] or second["headers"]["content-length"] == "0"


# --- HTTPS --------------------------------------------------------------------------------------


def _https_upload(client: str, url: str, params: Any, tls: Any) -> Any:
    context = ssl.create_default_context()
    tls.ca.configure_trust(context)
    stream, headers = multipart_encode(params)
    with stream:
        if client == "requests":
            response = requests.post(
                url, data=stream, headers=headers, verify=str(tls.ca_file), timeout=TIMEOUT
            )
            return response.json()
        if client == "httpx":
            response = httpx.post(
                url, content=stream, headers=headers, verify=context, timeout=TIMEOUT
            )
            return response.json()
        if client == "aiohttp":

            async def go() -> Any:
                async with (
                    aiohttp.ClientSession() as session,
                    session.post(url, data=stream, headers=headers, ssl=context) as response,
                ):
                    return await response.json()

            return asyncio.run(go())
        if client == "urllib3":
            pool = urllib3.PoolManager(ssl_context=context, timeout=TIMEOUT)
            return pool.request("POST", url, body=stream, headers=headers).json()
        if client == "http.client":
            parts = urllib.parse.urlsplit(url)
            conn = http.client.HTTPSConnection(
                parts.hostname, parts.port, context=context, timeout=TIMEOUT
            )
            try:
                conn.request("POST", parts.path, body=stream, headers=headers)
                return json.loads(conn.getresponse().read())
            finally:
                conn.close()
        raise AssertionError(client)


@pytest.mark.parametrize("client", ["requests", "httpx", "aiohttp", "urllib3", "http.client"])
def test_client_upload_over_https(
    client: str, werkzeug_https_server: Any, tls: Any, small_payload: Any
) -> None:
    record = _https_upload(
        client, werkzeug_https_server.url + "upload", small_payload.params(), tls
    )
    check_upload(record, small_payload)
    assert "transfer-encoding" not in record["headers"]
