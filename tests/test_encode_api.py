"""Every function of poster_rs.encode and every MultipartParam method."""

from __future__ import annotations

import io
import os
import pathlib
import re

import poster_rs
import pytest
from _helpers import B, encode_all, fd_count, split_parts
from poster_rs import (
    BoundaryError,
    ChunkedMultipartStream,
    MultipartParam,
    MultipartStream,
    encode_file_header,
    encode_string,
    gen_boundary,
    get_body_size,
    get_headers,
    multipart_encode,
)

TEXT = b"Content-Type: text/plain; charset=utf-8"
OCTET = b"Content-Type: application/octet-stream"


def disposition(name: bytes, filename: bytes | None = None) -> bytes:
    line = b'Content-Disposition: form-data; name="' + name + b'"'
    if filename is not None:
        line += b'; filename="' + filename + b'"'
    return line


# --- the public names ---------------------------------------------------------------------


def test_public_names():
    import poster_rs.encode as enc

    for name in [
        "MultipartParam",
        "encode_and_quote",
        "encode_file_header",
        "encode_string",
        "gen_boundary",
        "get_body_size",
        "get_headers",
        "multipart_encode",
    ]:
        assert name in enc.__all__
        assert getattr(poster_rs, name) is getattr(enc, name)
    assert isinstance(poster_rs.version, tuple)
    assert all(isinstance(x, int) for x in poster_rs.version)


# --- MultipartParam constructor -------------------------------------------------------------


def test_value_and_fileobj_are_exclusive():
    with pytest.raises(ValueError, match="Only one of value or fileobj may be specified"):
        MultipartParam("a", value="x", fileobj=io.BytesIO(b"y"))
    with pytest.raises(ValueError, match="Only one of value or fileobj may be specified"):
        MultipartParam("a", value="", fileobj=io.BytesIO(b"y"))  # "" counts as a value


@pytest.mark.parametrize("name", [5, None, 1.5, ["a"], object()])
def test_name_must_be_str_or_bytes(name):
    with pytest.raises(TypeError):
        MultipartParam(name, "x")


def test_name_bytes_is_utf8_text():
    assert MultipartParam(b"caf\xc3\xa9", "x").name == "caf\xe9"
    with pytest.raises(ValueError, match="UTF-8"):
        MultipartParam(b"\xff", "x")


def test_negative_filesize():
    with pytest.raises(ValueError, match="negative"):
        MultipartParam("a", filesize=-1)
    with pytest.raises(ValueError, match="negative"):
        MultipartParam("a", filesize=-1, fileobj=io.BytesIO(b""))


def test_filesize_must_be_int():
    with pytest.raises(TypeError):
        MultipartParam("a", filesize="3", fileobj=io.BytesIO(b"abc"))
    with pytest.raises(TypeError):
        MultipartParam("a", filesize=True, fileobj=io.BytesIO(b"a"))


def test_wrong_filesize_for_measurable_file(data_files):
    with pytest.raises(ValueError, match="filesize=3"):
        MultipartParam("a", filesize=3, fileobj=io.BytesIO(b"ab"))
    with open(data_files.text, "rb") as f:
        with pytest.raises(ValueError, match="filesize=5"):
            MultipartParam("a", filesize=5, fileobj=f)
        assert MultipartParam("a", filesize=11, fileobj=f).filesize == 11


def test_text_mode_file_is_refused(data_files):
    with pytest.raises(TypeError, match="text mode"):
        MultipartParam("a", fileobj=io.StringIO("abc"))
    with open(data_files.text) as f:
        with pytest.raises(TypeError, match="binary mode"):
            MultipartParam("a", fileobj=f)
        with pytest.raises(TypeError, match="text mode"):
            multipart_encode([("a", f)])


def test_fileobj_needs_read():
    with pytest.raises(TypeError):
        MultipartParam("a", fileobj=object())


def test_value_conversion():
    assert MultipartParam("a", 5).value == "5"
    assert MultipartParam("a", "\xe9").value == "\xe9"
    assert MultipartParam("a", b"\xff").value == b"\xff"
    assert MultipartParam("a", bytearray(b"xy")).value == b"xy"
    assert MultipartParam("a", "").value == ""
    with pytest.raises(TypeError, match="fileobj"):
        MultipartParam("a", io.BytesIO(b"x"))
    with pytest.raises(TypeError, match="from_file"):
        MultipartParam("a", pathlib.Path("/etc/hostname"))


def test_attributes_and_filesize_measured(data_files):
    param = MultipartParam("a", filename="x.bin", filetype="a/b", fileobj=io.BytesIO(b"12345"))
    assert (param.name, param.value, param.filename, param.filetype, param.filesize) == (
        "a",
        None,
        "x.bin",
        "a/b",
        5,
    )
    with open(data_files.text, "rb") as f:
        assert MultipartParam("a", fileobj=f).filesize == 11
        f.seek(6)
        # measured from the current position; the position is left alone
        assert MultipartParam("a", fileobj=f).filesize == 5
        assert f.tell() == 6


def test_equality_and_sorting():
    assert MultipartParam("a", "1") == MultipartParam("a", "1")
    assert MultipartParam("a", "1") != MultipartParam("a", "2")
    params = [MultipartParam("b", "1"), MultipartParam("a", "2"), MultipartParam("a", "1")]
    assert [(p.name, p.value) for p in sorted(params)] == [("a", "1"), ("a", "2"), ("b", "1")]


# --- from_file ------------------------------------------------------------------------------


def test_from_file(data_files):
    for path in (str(data_files.text), data_files.text, os.fsencode(data_files.text)):
        param = MultipartParam.from_file("f", path)
        assert param.name == "f"
        assert param.filename == "hello.txt"
        assert param.filetype == "text/plain"
        assert param.filesize == 11
    param = MultipartParam.from_file("f", data_files.medium)
    assert param.filename == "medium.dat"
    assert param.filetype is None


def test_from_file_missing(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError) as info:
        MultipartParam.from_file("f", missing)
    assert info.value.filename == str(missing)


def test_from_file_directory(tmp_path):
    with pytest.raises(IsADirectoryError):
        MultipartParam.from_file("f", tmp_path)


def test_from_file_leaves_no_descriptor_open(data_files):
    before = fd_count()
    param = MultipartParam.from_file("f", data_files.text)
    body, headers = encode_all([param], B)
    assert body.endswith(b"\r\n\r\nhello world\r\n--XYZXYZXYZ--\r\n")
    assert headers["Content-Length"] == str(len(body))
    assert param.encode(B).endswith(b"hello world\r\n")
    assert b"".join(param.iter_encode(B)) == param.encode(B)
    param.reset()
    assert fd_count() == before


def test_from_file_content_type_guess(tmp_path):
    for name, expected in [("a.png", b"image/png"), ("a.json", b"application/json")]:
        path = tmp_path / name
        path.write_bytes(b"{}")
        body, _ = encode_all([MultipartParam.from_file("f", path)], B)
        assert b"Content-Type: " + expected + b"\r\n" in body


# --- from_params ----------------------------------------------------------------------------


def test_from_params_mapping_and_pairs():
    params = MultipartParam.from_params({"a": "1", "b": b"2", "c": 3})
    assert [(p.name, p.value) for p in params] == [("a", "1"), ("b", b"2"), ("c", "3")]
    given = MultipartParam("q", "r")
    params = MultipartParam.from_params([("a", "1"), given, ("a", "2")])
    assert [(p.name, p.value) for p in params] == [("a", "1"), ("q", "r"), ("a", "2")]
    assert params[1] is given


def test_from_params_multipartparam_values():
    given = MultipartParam("h", "z")
    assert MultipartParam.from_params({"h": given}) == [given]
    assert MultipartParam.from_params({"h": given})[0] is given
    with pytest.raises(ValueError, match="given under the name"):
        MultipartParam.from_params([("a", MultipartParam("b", "x"))])


def test_from_params_file_objects_use_basename(data_files):
    with open(data_files.text, "rb") as f:
        assert os.path.isabs(f.name)
        (param,) = MultipartParam.from_params([("f", f)])
        assert param.filename == "hello.txt"
        assert param.filetype == "text/plain"
        assert param.filesize == 11
        assert param.fileobj is f
    (param,) = MultipartParam.from_params([("f", io.BytesIO(b"abc"))])
    assert param.filename is None
    assert param.filesize == 3


def test_from_params_pathlike(data_files):
    (param,) = MultipartParam.from_params({"d": data_files.text})
    assert (param.filename, param.filetype, param.filesize) == ("hello.txt", "text/plain", 11)


def test_from_params_list_values_repeat_the_field():
    params = MultipartParam.from_params({"tags": ["a", b"b", 3]})
    assert [(p.name, p.value) for p in params] == [("tags", "a"), ("tags", b"b"), ("tags", "3")]
    body, _ = encode_all({"tags": ["a", "b"]}, B)
    assert [p[1] for p in split_parts(body, B)] == [b"a", b"b"]


def test_from_params_requests_style_tuples(data_files):
    params = MultipartParam.from_params(
        {
            "e": ("x.json", b"{}", "application/json"),
            "g": ("y.png", io.BytesIO(b"P")),
            "h": ("z.txt", "text \xe9"),
            "p": ("renamed.dat", data_files.text),
        }
    )
    got = [(p.name, p.filename, p.filetype, p.filesize) for p in params]
    assert got == [
        ("e", "x.json", "application/json", 2),
        ("g", "y.png", "image/png", 1),
        ("h", "z.txt", "text/plain", 7),
        ("p", "renamed.dat", "text/plain", 11),  # type guessed from the path
    ]
    body, headers = encode_all(params, B)
    parts = split_parts(body, B)
    assert [data for _, data in parts] == [b"{}", b"P", "text \xe9".encode(), b"hello world"]
    assert parts[0][0][0] == disposition(b"e", b"x.json")
    assert parts[0][0][1] == b"Content-Type: application/json"
    assert parts[3][0][0] == disposition(b"p", b"renamed.dat")
    assert headers["Content-Length"] == str(len(body))


PATH_TUPLES = [
    ("renamed.dat", "application/x-thing"),
    ("", "text/csv"),  # empty texts go the general way
    ("r.dat", ""),
    ("x\udcff.txt", "text/plain"),  # a lone surrogate, cleaned by the Python layer
    (b"raw.bin", "text/plain"),
    (None, "text/plain"),
    ('q"uote\r\n.txt', "text/plain"),
    ("r.dat", None),  # the type guessed
]


@pytest.mark.parametrize(("filename", "filetype"), PATH_TUPLES)
def test_path_tuples_encode_as_their_multipart_params(data_files, filename, filetype):
    """``(name, (filename, path, type))`` read directly by the compiled layer makes the same
    body as the ``MultipartParam`` the Python layer builds from it."""
    params = [("f", (filename, data_files.text, filetype)), ("g", "v")]
    direct, direct_headers = encode_all(params, B)
    built, built_headers = encode_all(MultipartParam.from_params(params), B)
    assert direct == built
    assert direct_headers == built_headers
    assert split_parts(direct, B)[0][1] == b"hello world"


def test_path_tuple_with_a_type_asks_mimetypes_nothing(data_files, monkeypatch):
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("mimetypes was asked for a type that was given")

    monkeypatch.setattr("mimetypes.guess_type", refuse)
    params = [("f", ("renamed.dat", data_files.text, "application/x-thing"))]
    built = MultipartParam.from_params(params)
    # The plain tuple is read by the compiled layer itself: no MultipartParam per file.
    monkeypatch.setattr("poster_rs.encode._param_from_file_tuple", refuse)
    for form in (params, built):
        body, _ = encode_all(form, B)
        (head, data), *_ = split_parts(body, B)
        assert head == [disposition(b"f", b"renamed.dat"), b"Content-Type: application/x-thing"]
        assert data == b"hello world"


@pytest.mark.parametrize("filetype", ["a\r\nb", "x\x00y"])
def test_path_tuple_with_a_broken_type_is_refused(data_files, filetype):
    with pytest.raises(poster_rs.HeaderError, match="Content-Type"):
        multipart_encode([("f", ("x.txt", data_files.text, filetype))])


def test_from_params_bad_items():
    with pytest.raises(TypeError):
        MultipartParam.from_params([("a",)])
    with pytest.raises(TypeError):
        MultipartParam.from_params("abc")
    with pytest.raises(TypeError):
        MultipartParam.from_params([("a", None)])
    with pytest.raises(TypeError):
        MultipartParam.from_params([(5, "x")])
    with pytest.raises(TypeError):
        MultipartParam.from_params({"a": ("f",)})


# --- encode_hdr / encode / iter_encode / get_size / reset --------------------------------------


def test_encode_hdr_text_and_file():
    assert MultipartParam("a", "1").encode_hdr(B) == (
        b"--XYZXYZXYZ\r\n" + disposition(b"a") + b"\r\n" + TEXT + b"\r\n\r\n"
    )
    param = MultipartParam("f", filename="x.bin", fileobj=io.BytesIO(b"data"))
    assert param.encode_hdr(B) == (
        b"--XYZXYZXYZ\r\n" + disposition(b"f", b"x.bin") + b"\r\n" + OCTET + b"\r\n\r\n"
    )
    assert param.encode_hdr(B, escape="poster").endswith(TEXT + b"\r\n\r\n")


def test_encode_and_get_size():
    param = MultipartParam("a", "v\xe9")
    encoded = param.encode(B)
    assert encoded == param.encode_hdr(B) + "v\xe9".encode() + b"\r\n"
    assert param.get_size(B) == len(encoded)
    fparam = MultipartParam("f", filename="x", fileobj=io.BytesIO(b"0123456789"))
    assert fparam.get_size(B) == len(fparam.encode_hdr(B)) + 10 + 2
    assert fparam.encode(B) == fparam.encode_hdr(B) + b"0123456789\r\n"


def test_explicit_filesize_wins_in_get_size():
    assert (
        MultipartParam("a", filesize=42).get_size(B) == len(encode_file_header(B, "a", 42)) + 42 + 2
    )


def test_encode_detects_the_delimiter_in_the_value():
    with pytest.raises(BoundaryError):
        MultipartParam("a", "x\r\n--XYZXYZXYZ\r\n").encode(B)
    with pytest.raises(BoundaryError):
        MultipartParam("a", "--XYZXYZXYZ").encode(B)
    # not at the start of a line: fine
    assert MultipartParam("a", "x--XYZXYZXYZ").encode(B).endswith(b"x--XYZXYZXYZ\r\n")
    with pytest.raises(BoundaryError):
        list(MultipartParam("f", fileobj=io.BytesIO(b"ab\r\n--XYZXYZXYZ--")).iter_encode(B, 3))


def test_iter_encode_blocks():
    param = MultipartParam("f", filename="x", fileobj=io.BytesIO(b"0123456789"))
    blocks = list(param.iter_encode(B, blocksize=4))
    assert blocks == [param.encode_hdr(B), b"0123", b"4567", b"89", b"\r\n"]
    text_blocks = list(MultipartParam("a", "1").iter_encode(B))
    assert text_blocks == [MultipartParam("a", "1").encode(B)]


def test_iter_encode_callbacks():
    calls = []
    param = MultipartParam(
        "f",
        fileobj=io.BytesIO(b"0123456789"),
        cb=lambda p, current, total: calls.append((p, current, total)),
    )
    size = param.get_size(B)
    blocks = list(param.iter_encode(B, blocksize=4))
    assert [c for _, c, _ in calls] == [sum(map(len, blocks[: i + 1])) for i in range(len(blocks))]
    assert all(p is param and total == size for p, _, total in calls)
    assert calls[-1][1] == size


def test_reset():
    data = io.BytesIO(b"0123456789")
    data.seek(2)
    param = MultipartParam("f", fileobj=data)
    assert param.filesize == 8
    assert param.encode(B).endswith(b"23456789\r\n")
    param.reset()
    assert data.tell() == 2  # back to where it was when the parameter was made
    assert param.encode(B).endswith(b"\r\n\r\n23456789\r\n")
    MultipartParam("a", "1").reset()  # a value: nothing to do
    with pytest.raises(ValueError, match="Don't know how to reset"):
        MultipartParam("a", filesize=3).reset()


def test_encode_without_value_or_file_is_a_clear_error():
    with pytest.raises((TypeError, ValueError)):
        MultipartParam("a", filesize=3).encode(B)


# --- module functions -----------------------------------------------------------------------


def test_encode_string_values():
    assert encode_string(B, "a", 5).endswith(b"\r\n\r\n5\r\n")
    assert encode_string(B, "a", b"\x00\xff").endswith(b"\r\n\r\n\x00\xff\r\n")
    assert encode_string(B, b"n", "v") == encode_string(B, "n", "v")


def test_encode_file_header_matches_the_stream():
    header = encode_file_header(B, "f", 4, "x.bin", "a/b")
    body, _ = encode_all(
        [MultipartParam("f", filename="x.bin", filetype="a/b", fileobj=io.BytesIO(b"abcd"))], B
    )
    assert body.startswith(header + b"abcd\r\n")


@pytest.mark.parametrize("escape", ["quoted", "html5", "poster"])
def test_get_body_size_and_get_headers(data_files, escape):
    def params():
        return [
            ("a", "1"),
            ('\u2603 "q"', "v"),
            ("f", data_files.text),
            MultipartParam("g", filename='a"b\r\n.txt', fileobj=io.BytesIO(b"xyz")),
        ]

    size = get_body_size(params(), B, escape=escape)
    by_param = sum(p.get_size(B, escape=escape) for p in MultipartParam.from_params(params()))
    assert size == by_param + len(B) + 6
    headers = get_headers(params(), B, escape=escape)
    assert headers == {
        "Content-Type": f"multipart/form-data; boundary={B}",
        "Content-Length": str(size),
    }
    body, _ = encode_all(params(), B, escape=escape)
    assert len(body) == size


def test_get_headers_then_multipart_encode_same_params(data_files):
    with open(data_files.text, "rb") as f:
        params = [("b", io.BytesIO(b"abc")), ("f", f), ("p", data_files.text)]
        headers = get_headers(params, B)  # measures, reads nothing
        assert get_body_size(params, B) == int(headers["Content-Length"])
        body, headers2 = encode_all(params, B)
    assert headers2 == headers
    assert len(body) == int(headers["Content-Length"])
    assert [data for _, data in split_parts(body, B)] == [b"abc", b"hello world", b"hello world"]


def test_get_body_size_unknown_length():
    r, w = os.pipe()
    os.close(w)
    with os.fdopen(r, "rb") as pipe, pytest.raises(ValueError, match="unknown size"):
        get_body_size([("p", pipe)], B)


def test_gen_boundary():
    boundaries = {gen_boundary() for _ in range(200)}
    assert len(boundaries) == 200
    for b in boundaries:
        assert re.fullmatch(r"[0-9a-f]{32}", b)


def test_generated_boundary_used_by_multipart_encode():
    s1, h1 = multipart_encode([("a", "1")])
    s2, _ = multipart_encode([("a", "1")])
    with s1, s2:
        assert s1.boundary != s2.boundary
        assert re.fullmatch(r"[0-9a-f]{32}", s1.boundary)
        assert h1["Content-Type"] == f"multipart/form-data; boundary={s1.boundary}"
        assert s1.content_type == h1["Content-Type"]


# --- multipart_encode -----------------------------------------------------------------------


def test_multipart_encode_value_types():
    body, headers = encode_all([("s", "t\xe9xt"), ("b", b"\x00\xff"), ("i", 42), ("z", "")], B)
    parts = split_parts(body, B)
    assert [data for _, data in parts] == ["t\xe9xt".encode(), b"\x00\xff", b"42", b""]
    assert all(head[1] == TEXT for head, _ in parts)
    assert headers["Content-Length"] == str(len(body))
    assert isinstance(headers["Content-Length"], str)


def test_multipart_encode_mapping_and_generator():
    body1, _ = encode_all({"a": "1", "b": "2"}, B)
    body2, _ = encode_all(iter([("a", "1"), ("b", "2")]), B)
    assert body1 == body2


def test_multipart_encode_files(data_files):
    with open(data_files.text, "rb") as real:
        body, headers = encode_all(
            [
                ("bio", io.BytesIO(b"in memory")),
                ("real", real),
                ("path", data_files.text),
                ("empty", data_files.empty),
            ],
            B,
        )
    parts = split_parts(body, B)
    assert [data for _, data in parts] == [b"in memory", b"hello world", b"hello world", b""]
    assert parts[0][0] == [disposition(b"bio"), OCTET]
    assert parts[1][0] == [disposition(b"real", b"hello.txt"), b"Content-Type: text/plain"]
    assert parts[2][0] == [disposition(b"path", b"hello.txt"), b"Content-Type: text/plain"]
    assert parts[3][0] == [disposition(b"empty", b"empty.bin"), OCTET]
    assert headers["Content-Length"] == str(len(body))


def test_multipart_encode_positioned_real_file(data_files):
    with open(data_files.text, "rb") as f:
        f.seek(6)
        stream, headers = multipart_encode([("f", f)], B)
        with stream:
            body = b"".join(stream)
            assert body.endswith(b"\r\n\r\nworld\r\n--XYZXYZXYZ--\r\n")
            assert headers["Content-Length"] == str(len(body)) == str(len(stream))
            assert b"".join(stream) == body  # again, from the same position
        assert f.tell() == 6


def test_multipart_encode_positioned_bytesio():
    data = io.BytesIO(b"0123456789")
    data.seek(4)
    stream, headers = multipart_encode([("f", data)], B)
    with stream:
        body = b"".join(stream)
        assert body.endswith(b"\r\n\r\n456789\r\n--XYZXYZXYZ--\r\n")
        assert headers["Content-Length"] == str(len(body))
        assert b"".join(stream) == body


def test_multipart_encode_real_file_closed_by_caller(data_files):
    f = open(data_files.text, "rb")  # noqa: SIM115
    stream, _ = multipart_encode([("f", f)], B)
    f.close()
    with stream:
        assert b"".join(stream).endswith(b"hello world\r\n--XYZXYZXYZ--\r\n")


def test_multipart_encode_pipe_is_chunked():
    r, w = os.pipe()
    os.write(w, b"pipe data")
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        stream, headers = multipart_encode([("a", "1"), ("p", pipe)], B)
        with stream:
            assert isinstance(stream, ChunkedMultipartStream)
            assert not isinstance(stream, MultipartStream)
            assert "Content-Length" not in headers
            assert headers["Content-Type"] == f"multipart/form-data; boundary={B}"
            assert stream.total is None
            with pytest.raises(TypeError):
                len(stream)
            body = b"".join(stream)
    parts = split_parts(body, B)
    assert [data for _, data in parts] == [b"1", b"pipe data"]
    assert parts[1][0] == [disposition(b"p"), OCTET]


def test_multipart_encode_unsized_reader_with_filesize():
    class Reader:
        def __init__(self, data):
            self._data = io.BytesIO(data)

        def read(self, n=-1):
            return self._data.read(n)

    stream, headers = multipart_encode([MultipartParam("r", fileobj=Reader(b"abc"), filesize=3)], B)
    with stream:
        assert isinstance(stream, MultipartStream)
        body = b"".join(stream)
        assert headers["Content-Length"] == str(len(body))
        assert body.endswith(b"\r\n\r\nabc\r\n--XYZXYZXYZ--\r\n")
    short, _ = multipart_encode([MultipartParam("r", fileobj=Reader(b"ab"), filesize=3)], B)
    with short, pytest.raises(poster_rs.FileChangedError):
        b"".join(short)
    long_, _ = multipart_encode([MultipartParam("r", fileobj=Reader(b"abcd"), filesize=3)], B)
    with long_, pytest.raises(poster_rs.FileChangedError):
        b"".join(long_)
    stream, headers = multipart_encode([("r", Reader(b"xyz"))], B)
    with stream:
        assert isinstance(stream, ChunkedMultipartStream)
        assert "Content-Length" not in headers
        assert b"".join(stream).endswith(b"\r\n\r\nxyz\r\n--XYZXYZXYZ--\r\n")


def test_multipart_encode_option_errors():
    with pytest.raises(ValueError, match="escape"):
        multipart_encode([("a", "b")], escape="nope")
    with pytest.raises(ValueError, match="chunk_size"):
        multipart_encode([("a", "b")], chunk_size=0)
    with pytest.raises(TypeError):
        multipart_encode([("a", None)])
    with pytest.raises(BoundaryError):
        multipart_encode([("a", "x\r\n--XYZXYZXYZ")], B)


def test_header_values_with_crlf_are_refused():
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        multipart_encode(
            [MultipartParam("a", filename="x", filetype="text/html\r\nX: y", fileobj=io.BytesIO())]
        )
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        multipart_encode([MultipartParam("a", "v", headers={"X-A": "1\r\nX-B: 2"})])
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        encode_file_header(B, "a", 3, "x", "text/html\nX: y")


def test_boundary_in_file_data_is_detected(data_files, tmp_path):
    boundary = "0123456789abcdef"
    for at in (0, 262_141, (1 << 20) - 3):
        data = bytearray(b"a" * (2 << 20))
        data[at : at + 20] = b"\r\n--" + boundary.encode()
        path = tmp_path / f"collide{at}.bin"
        path.write_bytes(data)
        for value in (path, io.BytesIO(bytes(data))):
            stream, _ = multipart_encode([("f", value)], boundary)
            with stream, pytest.raises(BoundaryError):
                b"".join(stream)


# --- poster's callbacks ---------------------------------------------------------------------


def _trace(chunk_size):
    calls, part_calls = [], []
    params = [
        MultipartParam("a", "1", cb=lambda p, c, t: part_calls.append((p.name, c, t))),
        MultipartParam(
            "b",
            fileobj=io.BytesIO(b"0123456789"),
            cb=lambda p, c, t: part_calls.append((p.name, c, t)),
        ),
    ]
    stream, headers = multipart_encode(
        params,
        B,
        cb=lambda p, c, t: calls.append((p.name if p is not None else None, c, t)),
        escape="poster",
        chunk_size=chunk_size,
    )
    with stream:
        chunks = [len(c) for c in stream]
    return calls, part_calls, chunks, int(headers["Content-Length"])


@pytest.mark.parametrize("chunk_size", [1, 7, 50, 1 << 20])
def test_stream_callbacks(chunk_size):
    calls, part_calls, chunks, total = _trace(chunk_size)
    assert total == 226  # poster's trace: part a is 101 bytes, part b 110, closing 15
    assert sum(chunks) == total
    currents = [c for _, c, _ in calls]
    assert currents == sorted(currents)
    assert all(t == total for _, _, t in calls)
    assert calls[-1] == (None, total, total)
    assert [n for n, _, _ in calls[:-1]] == sorted(n for n, _, _ in calls[:-1])  # a then b
    assert ("a", 101, total) in calls
    assert ("b", 211, total) in calls
    a_calls = [(c, t) for n, c, t in part_calls if n == "a"]
    b_calls = [(c, t) for n, c, t in part_calls if n == "b"]
    assert a_calls[-1] == (101, 101)
    assert b_calls[-1] == (110, 110)
    for seq in (a_calls, b_calls):
        assert [c for c, _ in seq] == sorted(c for c, _ in seq)


def test_stream_callbacks_poster_trace_with_big_chunks():
    calls, part_calls, chunks, _ = _trace(1 << 20)
    assert chunks == [226]
    assert calls == [("a", 101, 226), ("b", 211, 226), (None, 226, 226)]
    assert part_calls == [("a", 101, 101), ("b", 110, 110)]


def test_stream_callbacks_on_each_pass():
    calls = []
    stream, _ = multipart_encode([("a", "1")], B, cb=lambda p, c, t: calls.append((p, c, t)))
    with stream:
        list(stream)
        first = list(calls)
        calls.clear()
        list(stream)
    assert calls == first
    assert first[-1] == (None, len(stream), len(stream))


def test_stream_callback_gets_multipart_params_for_pairs(data_files):
    calls = []
    stream, _ = multipart_encode(
        [("a", "1"), ("f", data_files.text)], B, cb=lambda p, c, t: calls.append((p, c, t))
    )
    with stream:
        list(stream)
    params = [p for p, _, _ in calls[:-1]]
    assert all(isinstance(p, MultipartParam) for p in params)
    assert [p.name for p in params] == ["a", "f"]
    assert params[1].filename == "hello.txt"
    assert calls[-1] == (None, len(stream), len(stream))


def test_param_callback_without_stream_callback():
    part_calls = []
    params = [MultipartParam("a", "1", cb=lambda p, c, t: part_calls.append((c, t))), ("b", "2")]
    stream, _ = multipart_encode(params, B, chunk_size=50)
    with stream:
        list(stream)
    assert part_calls[-1] == (part_calls[-1][1], part_calls[-1][1])
    assert part_calls[-1][1] == MultipartParam("a", "1").get_size(B)


# --- found defects --------------------------------------------------------------------------


def test_same_bytesio_param_encoded_twice():
    param = MultipartParam("f", fileobj=io.BytesIO(b"hello world"))
    first, _ = encode_all([param], B)
    second, _ = encode_all([param], B)
    assert first == second


@pytest.mark.parametrize("kind", ["bytesio", "real file"])
def test_param_encoded_then_streamed(kind, data_files):
    with open(data_files.text, "rb") as real:
        fileobj = io.BytesIO(b"hello world") if kind == "bytesio" else real
        param = MultipartParam("f", fileobj=fileobj)
        part = param.encode(B)
        body, _ = encode_all([param], B)
    assert body == part + b"--XYZXYZXYZ--\r\n"


def test_non_utf8_file_name(tmp_path):
    path = os.path.join(os.fsencode(tmp_path), b"caf\xe9.txt")
    with open(path, "wb") as f:
        f.write(b"data")
    param = MultipartParam.from_file("f", path)  # accepted here ...
    body, _ = encode_all([param], B)  # ... but cannot be encoded
    assert body.endswith(b"\r\n\r\ndata\r\n--XYZXYZXYZ--\r\n")
