"""Round trips through real server-side parsers (issue 4, point 3): werkzeug, python-multipart and
``email.parser`` (``BytesParser(policy=email.policy.HTTP)`` over ``Content-Type: ...`` + body).

- the table of which parser gets back which characters of names and filenames in each escape
  mode is computed (``tests/parser_table.py``) and compared with the checked-in expectation
  ``tests/parser_table.json``, recorded with the parser versions the test extras pin, so a
  change of the encoder shows up here (other parser versions skip that one comparison);
- hypothesis sends random forms through every parser in every mode: every parser must always
  find every part with its exact data (whatever the names), and must return a name or filename
  exactly whenever the table says every character in it survives that parser in that mode.
"""

from __future__ import annotations

import functools
import io
import json
import os
from typing import Any

import parser_table as pt
import poster_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def computed() -> dict[str, Any]:
    return pt.compute_table()


def test_parser_table_matches_expectation(computed: dict[str, Any]) -> None:
    recorded = pt.load_recorded()
    installed = pt.parser_versions()
    if {k: installed[k] for k in ("werkzeug", "python-multipart")} != {
        k: recorded["versions"][k] for k in ("werkzeug", "python-multipart")
    }:
        pytest.skip(
            f"the table was recorded with {recorded['versions']}, the installed parsers are "
            f"{installed}: their behaviour may differ (the test extras pin the recorded ones)"
        )
    expected = recorded["table"]
    differences = [
        f"{mode} / {parser} / {cls} / {field}: expected {expected[mode][parser][cls][field]}, "
        f"got {computed[mode][parser][cls][field]}"
        for mode in pt.MODES
        for parser in pt.PARSERS
        for cls in pt.CLASSES
        for field in pt.FIELDS
        if expected[mode][parser][cls][field] != computed[mode][parser][cls][field]
    ]
    assert not differences, (
        "the parser table changed (encoder or parser behaviour); if intended, run "
        "`python tests/parser_table.py --write` and update the README table:\n"
        + "\n".join(differences)
        + "\n\n"
        + pt.markdown(computed)
    )
    assert json.loads(json.dumps(computed)) == expected


def test_parser_table_markdown(computed: dict[str, Any]) -> None:
    text = pt.markdown(computed)
    lines = text.splitlines()
    assert lines[0].startswith("| character | quoted wz |")
    assert len([line for line in lines if line.startswith("| ")]) == len(pt.CLASSES) + 1
    print("\n" + text)


def test_every_character_class_has_a_probe() -> None:
    for cls, (_, text) in pt.CLASSES.items():
        assert cls in pt.classes_of(text), cls


def test_the_safe_classes_survive_every_parser_in_quoted_mode(computed: dict[str, Any]) -> None:
    """The default mode's promise (DESIGN.md): quotes, backslashes and non-ASCII round-trip
    through all three parsers."""
    for parser in pt.PARSERS:
        for cls in ("plain", "quote", "backslash", "non-ascii", "astral", "space", "semicolon"):
            assert computed["quoted"][parser][cls] == {"name": "ok", "filename": "ok"}, (
                parser,
                cls,
            )


def test_no_parser_ever_sees_a_raw_line_break_it_did_not_decode_itself(
    computed: dict[str, Any],
) -> None:
    """CR and LF never come back from werkzeug or python-multipart in any mode: they never reach
    the wire raw (email.parser decodes poster mode's RFC 2047 encoded words by itself)."""
    for mode in pt.MODES:
        for parser in ("werkzeug", "python-multipart"):
            for cls in ("CR", "LF"):
                assert computed[mode][parser][cls] == {"name": "wrong", "filename": "wrong"}


# --- hypothesis round trips ---------------------------------------------------------------------


@functools.cache
def live_table() -> dict[str, Any]:
    """The table of the parsers installed now: the round trips rely on how they behave, whatever
    their version."""
    return pt.compute_table()


texts = st.lists(
    st.one_of(
        st.sampled_from([*list("\"\\\r\n\t\x00\x01\x1b\x7f%;= '"), "%22", "%0A", "é", "😀"]),
        st.characters(codec="utf-8"),
    ),
    max_size=12,
).map("".join)


@st.composite
def forms(draw: st.DrawFn) -> list[tuple[str, str | None, bytes]]:
    """(name, filename or None, data) per part; data are unique per part so parts can be matched
    whatever a parser does to names."""
    count = draw(st.integers(1, 4))
    parts = []
    for index in range(count):
        name = draw(texts)
        filename = draw(st.one_of(st.none(), texts.filter(bool)))
        if filename is None:
            value = draw(st.text(max_size=40))
            data = f"{index}:{value}".encode()
        else:
            data = b"%d:" % index + draw(st.binary(max_size=200))
        parts.append((name, filename, data))
    return parts


def codes(text: str, mode: str, parser: str, field: str) -> set[str]:
    table = live_table()[mode][parser]
    return {table[cls][field] for cls in pt.classes_of(text)}


def survives(text: str, mode: str, parser: str, field: str) -> bool:
    return codes(text, mode, parser, field) <= {"ok"}


def stays_intact(name: str, filename: str | None, mode: str, parser: str) -> bool:
    """Whether the part keeps its shape (a file stays a file): then its data come back exactly
    even when its name or filename does not."""
    bad = {"lost", "error"}
    name_codes = codes(name, mode, parser, "name")
    filename_codes = set() if filename is None else codes(filename, mode, parser, "filename")
    return not (name_codes | filename_codes) & bad


def check_round_trip(mode: str, parts: list[tuple[str, str | None, bytes]]) -> None:
    params: list[Any] = []
    for name, filename, data in parts:
        if filename is None:
            params.append((name, data.decode()))
        else:
            params.append(
                poster_rs.MultipartParam(name, filename=filename, fileobj=io.BytesIO(data))
            )
    body, content_type = pt.encode(params, mode)
    for parser, parse in pt.PARSER_FUNCS.items():
        parsed = parse(body, content_type)
        # Every part, with its exact data, whatever its name and filename, as long as the table
        # says neither can make the parser lose the part's shape.
        assert len(parsed) == len(parts), parser
        by_data = {d: (n, f) for n, f, d in parsed}
        for name, filename, data in parts:
            if not stays_intact(name, filename, mode, parser):
                continue
            assert data in by_data, (parser, name, filename, data)
            got_name, got_filename = by_data[data]
            both = survives(name, mode, parser, "name") and (
                filename is None or survives(filename, mode, parser, "filename")
            )
            if both:
                assert got_name == name, (parser, name, got_name)
                assert got_filename == filename, (parser, filename, got_filename)


@pytest.mark.parametrize("mode", pt.MODES)
@settings(
    max_examples=int(os.environ.get("POSTER_RS_HYPOTHESIS_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(parts=forms())
def test_random_forms_round_trip(mode: str, parts: list[tuple[str, str | None, bytes]]) -> None:
    check_round_trip(mode, parts)
