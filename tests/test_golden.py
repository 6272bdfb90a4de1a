"""poster 0.8.1's golden vectors (reference/poster_api.md §7), byte for byte."""

from __future__ import annotations

import io

import poster_rs
import pytest
from _helpers import B, encode_all
from poster_rs import (
    BoundaryError,
    MultipartParam,
    encode_and_quote,
    encode_file_header,
    encode_string,
    get_body_size,
    multipart_encode,
)

CT = "multipart/form-data; boundary=XYZXYZXYZ"
TEXT_HDR = b"Content-Type: text/plain; charset=utf-8\r\n\r\n"


def v1():
    return [("foo", "bar")]


def v2():
    return [("key", "value1"), ("key", "value2")]


def v3():
    return [("foo", "b\xe1r")]


def v4():
    return [("\u2603", "bar")]


def v5():
    return [("foo", io.BytesIO(b"file data"))]


def v6():
    return [
        MultipartParam("img", filename="a.png", filetype="image/png", fileobj=io.BytesIO(b"PNG"))
    ]


def v7():
    return []


def v8():
    return [MultipartParam("f", filename="\u2603.txt", fileobj=io.BytesIO(b"x"))]


def v9():
    return [MultipartParam("f", filename='a"b\\c.txt', fileobj=io.BytesIO(b"x"))]


def v10():
    return [
        ("a", "1"),
        MultipartParam(
            "f",
            filename="t.bin",
            filetype="application/octet-stream",
            fileobj=io.BytesIO(b"\x00\x01"),
        ),
    ]


GOLDEN = {
    "V1": (
        v1,
        120,
        b'--XYZXYZXYZ\r\nContent-Disposition: form-data; name="foo"\r\n' + TEXT_HDR + b"bar\r\n"
        b"--XYZXYZXYZ--\r\n",
    ),
    "V2": (
        v2,
        231,
        b'--XYZXYZXYZ\r\nContent-Disposition: form-data; name="key"\r\n' + TEXT_HDR + b"value1\r\n"
        b'--XYZXYZXYZ\r\nContent-Disposition: form-data; name="key"\r\n' + TEXT_HDR + b"value2\r\n"
        b"--XYZXYZXYZ--\r\n",
    ),
    "V3": (
        v3,
        121,
        b'--XYZXYZXYZ\r\nContent-Disposition: form-data; name="foo"\r\n'
        + TEXT_HDR
        + b"b\xc3\xa1r\r\n--XYZXYZXYZ--\r\n",
    ),
    "V4": (
        v4,
        133,
        b'--XYZXYZXYZ\r\nContent-Disposition: form-data; name="=?utf-8?b?4piD?="\r\n'
        + TEXT_HDR
        + b"bar\r\n--XYZXYZXYZ--\r\n",
    ),
    "V5": (
        v5,
        126,
        b'--XYZXYZXYZ\r\nContent-Disposition: form-data; name="foo"\r\n'
        + TEXT_HDR
        + b"file data\r\n--XYZXYZXYZ--\r\n",
    ),
    "V6": (
        v6,
        122,
        b'--XYZXYZXYZ\r\nContent-Disposition: form-data; name="img"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\nPNG\r\n--XYZXYZXYZ--\r\n",
    ),
    "V7": (v7, 15, b"--XYZXYZXYZ--\r\n"),
    "V8": (
        v8,
        140,
        b'--XYZXYZXYZ\r\nContent-Disposition: form-data; name="f"; filename="&#9731;.txt"\r\n'
        + TEXT_HDR
        + b"x\r\n--XYZXYZXYZ--\r\n",
    ),
    "V9": (
        v9,
        140,
        b'--XYZXYZXYZ\r\nContent-Disposition: form-data; name="f"; filename="a\\"b\\\\c.txt"\r\n'
        + TEXT_HDR
        + b"x\r\n--XYZXYZXYZ--\r\n",
    ),
    "V10": (
        v10,
        235,
        b'--XYZXYZXYZ\r\nContent-Disposition: form-data; name="a"\r\n' + TEXT_HDR + b"1\r\n"
        b'--XYZXYZXYZ\r\nContent-Disposition: form-data; name="f"; filename="t.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n\x00\x01\r\n--XYZXYZXYZ--\r\n",
    ),
}

# The vectors whose bytes do not depend on poster's escaping or its text/plain default for files.
DEFAULT_MODE_SAME = ["V1", "V2", "V3", "V7", "V10"]


@pytest.mark.parametrize("vector", sorted(GOLDEN, key=lambda v: int(v[1:])))
def test_golden_vector_poster_mode(vector):
    make, length, expected = GOLDEN[vector]
    assert len(expected) == length
    body, headers = encode_all(make(), B, escape="poster")
    assert body == expected
    assert headers == {"Content-Type": CT, "Content-Length": str(length)}
    assert isinstance(headers["Content-Length"], str)


@pytest.mark.parametrize("vector", DEFAULT_MODE_SAME)
def test_golden_vector_default_mode(vector):
    make, length, expected = GOLDEN[vector]
    body, headers = encode_all(make(), B)
    assert body == expected
    assert headers == {"Content-Type": CT, "Content-Length": str(length)}


@pytest.mark.parametrize("vector", sorted(GOLDEN, key=lambda v: int(v[1:])))
def test_golden_vector_poster_mode_through_get_headers(vector):
    make, length, _ = GOLDEN[vector]
    assert poster_rs.get_headers(make(), B, escape="poster") == {
        "Content-Type": CT,
        "Content-Length": str(length),
    }
    assert get_body_size(make(), B, escape="poster") == length


def test_default_mode_differs_only_where_documented():
    # V4: raw UTF-8 name; V5/V8/V9 files without a type: application/octet-stream.
    body, _ = encode_all(v4(), B)
    assert b'name="\xe2\x98\x83"\r\n' in body
    body, headers = encode_all(v5(), B)
    assert b"Content-Type: application/octet-stream\r\n\r\nfile data\r\n" in body
    assert headers["Content-Length"] == str(len(body))
    body, _ = encode_all(v8(), B)
    assert b'filename="\xe2\x98\x83.txt"' in body
    body, _ = encode_all(v9(), B)
    assert b'filename="a\\"b\\\\c.txt"' in body


# --- single-function vectors --------------------------------------------------------------


def test_encode_string_vector():
    assert encode_string("XXXXXXXXX", "foo", "bar") == (
        b'--XXXXXXXXX\r\nContent-Disposition: form-data; name="foo"\r\n' + TEXT_HDR + b"bar\r\n"
    )
    assert encode_string("XXXXXXXXX", "foo", "bar", escape="poster") == encode_string(
        "XXXXXXXXX", "foo", "bar"
    )


def test_encode_file_header_vectors():
    assert encode_file_header(
        "XYZXYZXYZ", "file", 42, "\u2603.txt", "text/html", escape="poster"
    ) == (
        b'--XYZXYZXYZ\r\nContent-Disposition: form-data; name="file"; filename="&#9731;.txt"\r\n'
        b"Content-Type: text/html\r\n\r\n"
    )
    assert encode_file_header("XXXXXXXXX", "foo", 42, escape="poster") == (
        b'--XXXXXXXXX\r\nContent-Disposition: form-data; name="foo"\r\n' + TEXT_HDR
    )
    # Outside poster mode a file part without a type is application/octet-stream.
    assert encode_file_header("XXXXXXXXX", "foo", 42) == (
        b'--XXXXXXXXX\r\nContent-Disposition: form-data; name="foo"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n"
    )
    assert encode_file_header("XYZXYZXYZ", "file", 42, "\u2603.txt", "text/html") == (
        b'--XYZXYZXYZ\r\nContent-Disposition: form-data; name="file"; '
        b'filename="\xe2\x98\x83.txt"\r\nContent-Type: text/html\r\n\r\n'
    )


def test_encode_and_quote_vectors():
    assert encode_and_quote("(\xa9) 2008") == "%28%C2%A9%29+2008"
    assert encode_and_quote("foo bar") == "foo+bar"
    assert encode_and_quote("a+b") == "a%2Bb"
    assert encode_and_quote("a/b") == "a%2Fb"
    assert encode_and_quote("\xe9") == "%C3%A9"
    assert encode_and_quote(b"a b") == "a+b"
    assert encode_and_quote(None) is None


def test_size_vectors():
    assert get_body_size([("foo", "bar")], "XYZXYZXYZ") == 120
    assert MultipartParam("n", "\xe9").get_size("XYZXYZXYZ") == 102
    assert MultipartParam("n", "\xe9").get_size("XYZXYZXYZ", escape="poster") == 102


# --- V11: poster's boundary double quoting is not reproduced ----------------------------------


def test_v11_boundary_with_space_is_used_as_is():
    body, headers = encode_all([("foo", "bar")], "ABC DEF")
    expected = (
        b'--ABC DEF\r\nContent-Disposition: form-data; name="foo"\r\n'
        + TEXT_HDR
        + b"bar\r\n--ABC DEF--\r\n"
    )
    assert body == expected
    assert headers == {
        "Content-Type": 'multipart/form-data; boundary="ABC DEF"',
        "Content-Length": str(len(expected)),
    }
    assert encode_string("ABC DEF", "foo", "bar").startswith(b"--ABC DEF\r\n")


@pytest.mark.parametrize(
    "boundary",
    ["", "x" * 71, "ab ", "a\r\nb", "\xe9", "a\nb", 'a"b', "a\x00b"],
    ids=["empty", "71-chars", "trailing-space", "crlf", "non-ascii", "lf", "quote", "nul"],
)
def test_invalid_boundary_raises_boundary_error(boundary):
    assert issubclass(BoundaryError, ValueError)
    with pytest.raises(BoundaryError):
        multipart_encode([("foo", "bar")], boundary)
    with pytest.raises(BoundaryError):
        poster_rs.get_headers([("foo", "bar")], boundary)
    with pytest.raises(BoundaryError):
        get_body_size([("foo", "bar")], boundary)


@pytest.mark.parametrize("boundary", ["x" * 70, "a", "'()+_,-./:=?", "a b"])
def test_valid_boundaries_are_accepted(boundary):
    body, headers = encode_all([("foo", "bar")], boundary)
    assert body.startswith(b"--" + boundary.encode() + b"\r\n")
    assert body.endswith(b"--" + boundary.encode() + b"--\r\n")
    assert headers["Content-Length"] == str(len(body))


@pytest.mark.parametrize(
    "call",
    [
        lambda b: encode_string(b, "foo", "bar"),
        lambda b: encode_file_header(b, "foo", 3),
        lambda b: MultipartParam("foo", "bar").encode_hdr(b),
        lambda b: MultipartParam("foo", "bar").encode(b),
        lambda b: list(MultipartParam("foo", "bar").iter_encode(b)),
        lambda b: MultipartParam("foo", "bar").get_size(b),
    ],
    ids=["encode_string", "encode_file_header", "encode_hdr", "encode", "iter_encode", "get_size"],
)
def test_single_part_functions_validate_the_boundary(call):
    with pytest.raises(BoundaryError):
        call("a\r\nb")


def test_encode_string_refuses_empty_boundary():
    with pytest.raises(BoundaryError):
        encode_string("", "foo", "bar")
