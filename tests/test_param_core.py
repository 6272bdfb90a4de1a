"""MultipartParam on its compiled base: the encoder reads its fields directly, the core renders
its bytes, and parameters that cannot be part of a cycle stay out of the cycle collector."""

from __future__ import annotations

import copy
import gc
import io
import pathlib
import pickle
import weakref
from typing import Any

import pytest
from _helpers import B
from poster_rs import BoundaryError, MultipartParam, multipart_encode
from poster_rs._poster_rs import PART_END, Param


def body(params: list[Any], escape: Any = "quoted") -> bytes:
    stream, _ = multipart_encode(params, B, escape=escape)
    with stream:
        return b"".join(stream)


def test_multipart_param_is_the_typed_part_handed_to_the_core() -> None:
    param = MultipartParam("field", "value")
    assert isinstance(param, Param)
    param.filename = "notes.txt"
    param.filetype = "text/markdown"
    param.headers = [("X-Checksum", "abc")]
    sent = body([param])
    assert b'name="field"; filename="notes.txt"\r\nContent-Type: text/markdown\r\n' in sent
    assert b"X-Checksum: abc\r\n\r\nvalue\r\n" in sent


def test_value_accepts_only_text_or_bytes() -> None:
    param = MultipartParam("field", "value")
    param.value = b"raw"
    assert param.value == b"raw"
    with pytest.raises(TypeError, match="value must be str, bytes or None, not list"):
        param.value = []  # type: ignore[assignment]


@pytest.mark.parametrize("escape", ["quoted", "html5", "poster"])
def test_encode_iter_encode_and_get_size_agree(escape: Any, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "d\u00e9j\u00e0 vu.bin"
    path.write_bytes(bytes(range(256)) * 9)
    for param in (
        MultipartParam("caf\u00e9", "text \u2603"),
        MultipartParam("raw", b"\x00\xff"),
        MultipartParam.from_file("upload", path),
        MultipartParam("obj", filename="a.bin", fileobj=io.BytesIO(b"abc" * 1000)),
    ):
        whole = param.encode(B, escape=escape)
        assert b"".join(param.iter_encode(B, 100, escape=escape)) == whole
        assert param.get_size(B, escape=escape) == len(whole)
        assert whole.startswith(param.encode_hdr(B, escape=escape))
        assert whole.endswith(PART_END)
        assert whole in body([param], escape)


def test_iter_encode_finds_a_delimiter_split_across_blocks() -> None:
    data = b"abc\r\n--" + B.encode() + b"--"
    param = MultipartParam("f", filename="f.bin", fileobj=io.BytesIO(data))
    with pytest.raises(BoundaryError, match="boundary found in file data") as info:
        for _ in param.iter_encode(B, blocksize=1):
            pass
    assert (info.value.part, info.value.offset) == ("f", 5)


@pytest.mark.parametrize("escape", ["Quoted", "", "none"])
def test_unknown_escape_modes_are_refused(escape: str) -> None:
    with pytest.raises(ValueError, match="unknown escape mode"):
        multipart_encode([("a", "b")], B, escape=escape)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown escape mode"):
        MultipartParam("a", "b").encode_hdr(B, escape=escape)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        multipart_encode([("a", "b")], B, escape=3)  # type: ignore[arg-type]


def test_text_only_parameters_are_not_tracked_by_the_cycle_collector() -> None:
    param = MultipartParam("a", "b")
    assert not gc.is_tracked(param)
    param.cb = print
    assert gc.is_tracked(param)
    param.cb = None
    assert gc.is_tracked(param)  # tracked from then on: harmless
    assert gc.is_tracked(MultipartParam("f", fileobj=io.BytesIO(b"x")))
    assert gc.is_tracked(MultipartParam("a", "b", cb=print))
    assert gc.is_tracked(MultipartParam("a", "b", headers={"X-A": "1"}))


def test_a_cycle_through_a_callback_is_collected() -> None:
    param = MultipartParam("a", "b")

    def cb(p: Any, current: int, total: Any, keep: MultipartParam = param) -> None:
        pass

    param.cb = cb
    ref = weakref.ref(param)
    del param, cb
    gc.collect()
    assert ref() is None


def test_a_subclass_with_a_dict_stays_tracked_and_its_cycles_are_collected() -> None:
    class Annotated(MultipartParam):
        pass

    param = Annotated("a", "b")
    assert gc.is_tracked(param)
    param.me = param  # type: ignore[attr-defined]
    ref = weakref.ref(param)
    del param
    gc.collect()
    assert ref() is None
    assert body([Annotated("a", "b")]) == body([MultipartParam("a", "b")])


def test_parameters_copy_and_pickle_as_plain_objects_did(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"file data")
    for param in (
        MultipartParam("a", "b", headers={"X-A": "1"}),
        MultipartParam(b"n", 5, filename="x.txt", filetype="text/x"),
        MultipartParam.from_file("upload", path),
    ):
        for copy_of in (copy.copy(param), copy.deepcopy(param), pickle.loads(pickle.dumps(param))):
            assert type(copy_of) is MultipartParam
            assert copy_of == param
            assert copy_of.headers == param.headers
            assert copy_of.encode(B) == param.encode(B)
    assert not gc.is_tracked(copy.copy(MultipartParam("a", "b")))
