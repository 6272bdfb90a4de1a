"""Which server-side parsers get back which characters of names and filenames, per escape mode.

Each character class is probed through every escape mode and three parsers (werkzeug,
python-multipart, ``email.parser`` with ``policy.HTTP``): a form with one field named with the
probe and one file part whose name and filename are the probe, parsed back. Each cell is

- ``ok``: the parser returns exactly what was sent;
- ``wrong``: it returns something else (an escape left encoded, a character dropped...);
- ``lost``: the name or filename disappears (a file part turns into a plain field, whose data
  the parser may then decode as text);
- ``error``: the parser refuses the body or loses the part.

``python tests/parser_table.py`` prints the table as Markdown (for the README);
``python tests/parser_table.py --write`` rewrites ``tests/parser_table.json``, the expectation
``tests/test_parsers.py`` compares the computed table with.
"""

from __future__ import annotations

import email.parser
import email.policy
import io
import json
import pathlib
import sys
from collections.abc import Callable
from typing import Any

import poster_rs

MODES = ("quoted", "html5", "poster")
PARSERS = ("werkzeug", "python-multipart", "email.parser")
FIELDS = ("name", "filename")
EXPECTATION = pathlib.Path(__file__).with_name("parser_table.json")

#: Character class -> (label for the table, probe text). Every probe has plain letters around the
#: class's characters, so an escape at the edge of a quoted string does not hide the result.
CLASSES: dict[str, tuple[str, str]] = {
    "plain": ("letters, digits, `-_.`", "Ab9-_.z"),
    "quote": ('`"`', 'a"b'),
    "backslash": ("`\\` (single, inside)", "a\\b"),
    "backslash-pair": ("`\\\\` (two in a row)", "a\\\\b"),
    "backslash-quote": ('`\\"` (backslash, quote)', 'a\\"b'),
    "trailing-backslash": ("`\\` at the end", "ab\\"),
    "windows-path": ("Windows path (`C:\\`, `\\\\host`)", "C:\\dir\\x.txt"),
    "CR": ("CR", "a\rb"),
    "LF": ("LF", "a\nb"),
    "TAB": ("TAB", "a\tb"),
    "NUL": ("NUL", "a\0b"),
    "C0": ("other C0 (0x01, 0x1B, 0x1F)", "a\x01b\x1bc\x1fd"),
    "DEL": ("DEL (0x7F)", "a\x7fb"),
    "percent": ("`%` (as in `%22`, `%0A`)", "a%22b%0Ac"),
    "semicolon": ("`;`", "a;b"),
    "space": ("space", "a b"),
    "apostrophe": ("`'`", "a'b"),
    "equals": ("`=`", "a=b"),
    "non-ascii": ("non-ASCII BMP (é, €, ☃)", "r\u00e9sum\u00e9\u20ac\u2603"),
    "astral": ("astral (😀)", "a\U0001f600b"),
}

B = "ParserTableBoundary"


def classes_of(text: str) -> set[str]:
    """Every class a name or filename falls in: one per character, plus the backslash contexts
    parsers treat specially (a backslash escaping the closing quote, pairs, a backslash before
    a quote, and the Windows paths python-multipart cuts to their last component)."""
    found = {classify(ch) for ch in text}
    if "\\\\" in text:
        found.add("backslash-pair")
    if '\\"' in text:
        found.add("backslash-quote")
    if text.endswith("\\"):
        found.add("trailing-backslash")
    if text[1:3] == ":\\" or text.startswith("\\\\"):
        found.add("windows-path")
    return found


def classify(ch: str) -> str:
    """The class of one character (the hypothesis tests use it to look results up)."""
    code = ord(ch)
    named = {
        '"': "quote",
        "\\": "backslash",
        "\r": "CR",
        "\n": "LF",
        "\t": "TAB",
        "\0": "NUL",
        "\x7f": "DEL",
        "%": "percent",
        ";": "semicolon",
        " ": "space",
        "'": "apostrophe",
        "=": "equals",
    }
    if ch in named:
        return named[ch]
    if code < 0x20:
        return "C0"
    if code < 0x80:
        return "plain"
    if code <= 0xFFFF:
        return "non-ascii"
    return "astral"


# --- the parsers: body -> [(name, filename or None, data)] in body order where possible --------

Parsed = list[tuple[str | None, str | None, bytes]]


def parse_werkzeug(body: bytes, content_type: str) -> Parsed:
    from werkzeug.formparser import parse_form_data

    environ = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    _, form, files = parse_form_data(environ, silent=False)
    out: Parsed = [(k, None, v.encode("utf-8")) for k, v in form.items(multi=True)]
    for key, storage in files.items(multi=True):
        out.append((key, storage.filename, storage.read()))
        storage.close()
    return out


def parse_python_multipart(body: bytes, content_type: str) -> Parsed:
    import python_multipart

    out: Parsed = []

    def text(raw: bytes | None) -> str | None:
        return None if raw is None else raw.decode("utf-8", "surrogateescape")

    def on_field(field: Any) -> None:
        out.append((text(field.field_name), None, field.value or b""))

    def on_file(file: Any) -> None:
        file.file_object.seek(0)
        out.append((text(file.field_name), text(file.file_name), file.file_object.read()))
        file.close()

    headers = {"Content-Type": content_type.encode(), "Content-Length": str(len(body)).encode()}
    python_multipart.parse_form(headers, io.BytesIO(body), on_field, on_file)
    return out


def parse_email(body: bytes, content_type: str) -> Parsed:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    # Defects (non-ASCII bytes, control characters, encoded words inside quotes) are recorded
    # by the parser but do not stop it: what counts is what it returns.
    out: Parsed = []
    for part in message.iter_parts():
        disposition = part["Content-Disposition"]
        if disposition is None:
            raise ValueError("a part without Content-Disposition")
        params = disposition.params
        data = part.get_payload(decode=True)
        out.append((params.get("name"), params.get("filename"), data))
    return out


PARSER_FUNCS: dict[str, Callable[[bytes, str], Parsed]] = {
    "werkzeug": parse_werkzeug,
    "python-multipart": parse_python_multipart,
    "email.parser": parse_email,
}


def encode(params: list[Any], mode: str) -> tuple[bytes, str]:
    stream, headers = poster_rs.multipart_encode(params, B, escape=mode)
    with stream:
        return b"".join(list(stream)), headers["Content-Type"]


def probe(text: str, mode: str, parser: str) -> dict[str, str]:
    """Sends ``text`` as a field's name and as a file part's name and filename; returns the
    result code for ``name`` (both parts' names must come back) and ``filename``."""
    field_value, file_data = b"field value", b"file \x00\xff data"
    params = [
        (text, field_value),
        poster_rs.MultipartParam(text, filename=text, fileobj=io.BytesIO(file_data)),
    ]
    body, content_type = encode(params, mode)
    try:
        parsed = PARSER_FUNCS[parser](body, content_type)
    except Exception:
        return {"name": "error", "filename": "error"}
    by_data = {data: (name, filename) for name, filename, data in parsed}
    if len(parsed) != 2 or set(by_data) != {field_value, file_data}:
        return {"name": "error", "filename": "error"}
    field_name, _ = by_data[field_value]
    file_name, filename = by_data[file_data]

    def code(got: list[str | None]) -> str:
        if any(g is None for g in got):
            return "lost"
        return "ok" if all(g == text for g in got) else "wrong"

    return {"name": code([field_name, file_name]), "filename": code([filename])}


def compute_table() -> dict[str, dict[str, dict[str, dict[str, str]]]]:
    """``table[mode][parser][class][field]`` -> ``ok`` / ``wrong`` / ``error``."""
    return {
        mode: {
            parser: {cls: probe(text, mode, parser) for cls, (_, text) in CLASSES.items()}
            for parser in PARSERS
        }
        for mode in MODES
    }


def parser_versions() -> dict[str, str]:
    """The installed parsers: the table is a fact about these versions."""
    import importlib.metadata as md

    return {
        "werkzeug": md.version("werkzeug"),
        "python-multipart": md.version("python-multipart"),
        "python": sys.version.split()[0],
    }


def load_recorded() -> dict[str, Any]:
    """``{"versions": ..., "table": ...}`` as last written by ``--write``."""
    return json.loads(EXPECTATION.read_text(encoding="utf-8"))


def load_expectation() -> dict[str, Any]:
    return load_recorded()["table"]


SYMBOLS = {"ok": "✓", "wrong": "✗", "lost": "lost", "error": "refused"}


def cell(result: dict[str, str]) -> str:
    name, filename = result["name"], result["filename"]
    if name == filename:
        return SYMBOLS[name]
    return f"name {SYMBOLS[name]}, filename {SYMBOLS[filename]}"


def versions() -> str:
    import importlib.metadata as md

    return (
        f"werkzeug {md.version('werkzeug')}, python-multipart {md.version('python-multipart')}, "
        f"email.parser (Python {sys.version.split()[0]}, `policy.HTTP`)"
    )


def markdown(table: dict[str, Any]) -> str:
    short = {"werkzeug": "wz", "python-multipart": "pm", "email.parser": "em"}
    columns = [(mode, parser) for mode in MODES for parser in PARSERS]
    lines = [
        "| character | " + " | ".join(f"{mode} {short[p]}" for mode, p in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for cls, (label, _) in CLASSES.items():
        cells = [cell(table[mode][parser][cls]) for mode, parser in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "wz = werkzeug, pm = python-multipart, em = email.parser. ✓: the parser returns the "
        "name and filename exactly; ✗: it returns something else; lost: the filename (or name) "
        "disappears and the file part turns into a plain field; refused: it rejects the body "
        f"or loses the part. Measured with {versions()} by `python tests/parser_table.py`."
    )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    table = compute_table()
    if "--write" in argv:
        recorded = {"versions": parser_versions(), "table": table}
        EXPECTATION.write_text(
            json.dumps(recorded, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
        print(f"wrote {EXPECTATION}", file=sys.stderr)
    print(markdown(table))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
