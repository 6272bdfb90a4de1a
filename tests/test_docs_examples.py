"""The documentation's recipes (docs/examples/*.py, included verbatim in the site) run against
a local server that checks every upload byte for byte, so a recipe that stops working fails
here. The server also plays the parts the recipes are about: S3's presigned-POST rules, and
503 answers that make clients retry."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import hashlib
import importlib.util
import json
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
TIMEOUT = 20.0
MiB = 1 << 20

if not EXAMPLES.is_dir():
    pytest.skip("docs/examples is not next to the tests", allow_module_level=True)


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    # (name, filename, size, sha256) in the order the parts arrived
    parts: list[tuple[str, str | None, int, str]]
    status: int


@dataclass
class State:
    received: list[Received] = field(default_factory=list)
    failures_left: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def parse_parts(body: bytes, content_type: str) -> list[tuple[str, str | None, int, str]]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    assert message.is_multipart(), "not a multipart body"
    parts = []
    for part in message.iter_parts():
        data = part.get_payload(decode=True)
        assert isinstance(data, bytes)
        name = part.get_param("name", header="content-disposition")
        assert isinstance(name, str)
        parts.append((name, part.get_filename(), len(data), hashlib.sha256(data).hexdigest()))
    return parts


def s3_verdict(parts: list[tuple[str, str | None, int, str]]) -> int:
    """S3's POST rules that the recipe depends on: the file is the last part, named "file",
    and the policy came before it."""
    names = [name for name, *_ in parts]
    if not names or names[-1] != "file" or "policy" not in names[:-1]:
        return 400
    return 204


class Handler(BaseHTTPRequestHandler):
    server: Server
    timeout = TIMEOUT  # socket timeout: a stalled client cannot hold a thread

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def answer(self, status: int, payload: Any = None, extra: dict[str, str] | None = None) -> None:
        body = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        if status != 204:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status != 204:
            self.wfile.write(body)

    def do_POST(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        if "content-length" not in headers or "transfer-encoding" in headers:
            self.answer(411, {"error": "Content-Length required, chunked refused"})
            self.close_connection = True
            return
        body = self.rfile.read(int(headers["content-length"]))
        parts = parse_parts(body, headers.get("content-type", ""))
        state = self.server.state
        with state.lock:
            left = state.failures_left.get(self.path, 0)
            state.failures_left[self.path] = max(left - 1, 0)
        if left:
            status = 503
        elif self.path.startswith("/s3"):
            status = s3_verdict(parts)
        else:
            status = 200
        with state.lock:
            state.received.append(Received(self.path, headers, parts, status))
        extra = {"Retry-After": "0"} if status == 503 else None
        self.answer(status, None if status == 204 else {"parts": parts}, extra)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    state: State


@pytest.fixture
def server() -> Iterator[tuple[str, State]]:
    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.state = State()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 MiB of varied bytes: several of the stream's chunks."""
    path = tmp_path_factory.mktemp("docs") / "big.bin"
    path.write_bytes(hashlib.sha256(b"seed").digest() * (5 * MiB // 32))
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def only(state: State) -> Received:
    assert len(state.received) == 1, state.received
    return state.received[0]


def test_progress_with_tqdm(server: tuple[str, State], big_file: Path) -> None:
    url, state = server
    load("progress_tqdm").upload_with_tqdm(f"{url}/tqdm", big_file)
    got = only(state)
    assert got.parts[-1] == ("file", "big.bin", big_file.stat().st_size, digest(big_file))
    assert got.parts[0][0] == "title"


def test_progress_with_tqdm_reaches_the_total(
    server: tuple[str, State], big_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load("progress_tqdm")
    bars: list[Any] = []
    real = module.tqdm

    def recording(*args: Any, **kwargs: Any) -> Any:
        bars.append(real(*args, **kwargs))
        return bars[-1]

    monkeypatch.setattr(module, "tqdm", recording)
    url, state = server
    module.upload_with_tqdm(url, big_file)
    (bar,) = bars
    assert bar.n == bar.total == int(only(state).headers["content-length"])


def test_progress_with_rich(server: tuple[str, State], big_file: Path, tmp_path: Path) -> None:
    small = tmp_path / "small.txt"
    small.write_bytes(b"x" * 1000)
    url, state = server
    load("progress_rich").upload_with_rich(url, [big_file, small])
    assert [r.parts for r in state.received] == [
        [("file", "big.bin", big_file.stat().st_size, digest(big_file))],
        [("file", "small.txt", 1000, digest(small))],
    ]


def test_s3_presigned_post(server: tuple[str, State], big_file: Path) -> None:
    url, state = server
    # The shape boto3's generate_presigned_post returns (signature values made up).
    presigned = {
        "url": f"{url}/s3/my-bucket",
        "fields": {
            "key": "uploads/big.bin",
            "x-amz-algorithm": "AWS4-HMAC-SHA256",
            "x-amz-credential": "AKIDEXAMPLE/20261203/us-east-1/s3/aws4_request",
            "x-amz-date": "20261203T000000Z",
            "policy": "eyJleHBpcmF0aW9uIjogIjIwMjYtMTItMDNUMDE6MDA6MDBaIn0=",
            "x-amz-signature": "0" * 64,
        },
    }
    response = load("s3_presigned_post").upload_presigned_post(presigned, big_file)
    assert response.status_code == 204
    got = only(state)
    assert [name for name, *_ in got.parts] == [*presigned["fields"], "file"]
    assert got.parts[-1][1:] == ("big.bin", big_file.stat().st_size, digest(big_file))
    assert "transfer-encoding" not in got.headers


@pytest.mark.parametrize("client", ["urllib3", "requests"])
def test_retries_send_the_whole_body_again(
    server: tuple[str, State], big_file: Path, client: str
) -> None:
    url, state = server
    state.failures_left["/flaky"] = 2
    module = load("retries")
    upload = module.upload_with_urllib3 if client == "urllib3" else module.upload_with_requests
    response = upload(f"{url}/flaky", big_file)
    assert response.status == 200 if client == "urllib3" else response.status_code == 200
    assert [r.status for r in state.received] == [503, 503, 200]
    expected = [("file", "big.bin", big_file.stat().st_size, digest(big_file))]
    assert all(r.parts == expected for r in state.received)


def test_httpx_sync_and_async(server: tuple[str, State], big_file: Path) -> None:
    url, state = server
    module = load("httpx_clients")
    module.upload_with_httpx(url, big_file)
    asyncio.run(asyncio.wait_for(module.upload_with_httpx_async(url, big_file), TIMEOUT))
    expected: list[tuple[str, str | None, int, str]] = [
        ("title", None, 6, hashlib.sha256(b"report").hexdigest())
    ]
    expected.append(("file", "big.bin", big_file.stat().st_size, digest(big_file)))
    assert [r.parts for r in state.received] == [expected, expected]
    assert all("transfer-encoding" not in r.headers for r in state.received)


def test_migrating_from_poster(server: tuple[str, State], big_file: Path) -> None:
    url, state = server
    try:
        reply = load("from_poster").upload_like_poster(url, big_file)
    finally:
        urllib.request.install_opener(None)  # register_openers() installed a global opener
    expected = ["image1", "big.bin", big_file.stat().st_size, digest(big_file)]
    assert json.loads(reply)["parts"] == [expected]
    assert only(state).headers["content-length"].isdigit()


def test_migrating_from_requests_toolbelt(server: tuple[str, State], tmp_path: Path) -> None:
    path = tmp_path / "file.py"
    path.write_text("print('hello')\n")
    seen: list[tuple[int, int]] = []
    url, state = server
    load("from_requests_toolbelt").upload_like_toolbelt(url, path, lambda c, t: seen.append((c, t)))
    got = only(state)
    assert [p[:2] for p in got.parts] == [("field0", None), ("field1", None), ("field2", "file.py")]
    total = int(got.headers["content-length"])
    assert seen[-1] == (total, total)


def test_shipping_on_dask(server: tuple[str, State], tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    paths = []
    for i in range(20):
        paths.append(tmp_path / f"part-{i:02}.csv")
        paths[-1].write_text(f"id,value\n{i},{i * i}\n")
    url, state = server
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=2,
            processes=False,  # in-process workers: inproc:// transport, quick to start
            dashboard_address="127.0.0.1:0",
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        results = load("dask_ship").ship_on_dask(client.get_executor(), paths, url)
    assert sorted(Path(r.path).name for r in results) == [p.name for p in paths]
    received = sorted(tuple(r.parts) for r in state.received)
    expected = sorted(
        (("source", None, 4, hashlib.sha256(b"dask").hexdigest()),
         ("file", p.name, p.stat().st_size, digest(p)))
        for p in paths
    )  # fmt: skip
    assert received == expected
