//! How field names and filenames are written inside `Content-Disposition`.
//!
//! No single form survives every server-side parser, so the caller picks one. Whatever the mode,
//! no raw CR or LF from user input ever reaches a header line.

use std::fmt;
use std::str::FromStr;

/// The escaping rule for `name="..."` and `filename="..."`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum EscapeMode {
    /// `"` → `\"`, `\` → `\\`, CR → `%0D`, LF → `%0A`, other C0 controls except TAB and DEL →
    /// `%XX`, non-ASCII as raw UTF-8. Round-trips through the most parsers.
    #[default]
    Quoted,
    /// The WHATWG rule browsers use: `"` → `%22`, CR → `%0D`, LF → `%0A`, and (beyond it) NUL
    /// → `%00`; nothing else.
    Html5,
    /// poster 0.8.1's bytes: RFC 2047 encoded-words for non-ASCII names, `&#N;` character
    /// references and backslash escapes for filenames, `text/plain; charset=utf-8` for every
    /// part without a type.
    Poster,
}

impl EscapeMode {
    /// The mode's name as the Python API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            EscapeMode::Quoted => "quoted",
            EscapeMode::Html5 => "html5",
            EscapeMode::Poster => "poster",
        }
    }
}

impl fmt::Display for EscapeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an unknown escape mode name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownEscapeMode(pub String);

impl fmt::Display for UnknownEscapeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown escape mode {:?}: use \"quoted\", \"html5\" or \"poster\"",
            self.0
        )
    }
}

impl std::error::Error for UnknownEscapeMode {}

impl FromStr for EscapeMode {
    type Err = UnknownEscapeMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "quoted" => Ok(EscapeMode::Quoted),
            "html5" => Ok(EscapeMode::Html5),
            "poster" => Ok(EscapeMode::Poster),
            other => Err(UnknownEscapeMode(other.to_owned())),
        }
    }
}

fn push_percent(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.extend_from_slice(&[
        b'%',
        HEX[usize::from(byte >> 4)],
        HEX[usize::from(byte & 0xf)],
    ]);
}

/// Appends `value` escaped by the `quoted` rule.
fn push_quoted(out: &mut Vec<u8>, value: &str) {
    for &byte in value.as_bytes() {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.push(byte),
            // DEL too: strict header parsers (httparse) reject it.
            0..=0x1f | 0x7f => push_percent(out, byte),
            _ => out.push(byte),
        }
    }
}

/// Appends `value` escaped by the WHATWG rule.
fn push_html5(out: &mut Vec<u8>, value: &str) {
    for &byte in value.as_bytes() {
        match byte {
            b'"' => out.extend_from_slice(b"%22"),
            b'\r' => out.extend_from_slice(b"%0D"),
            b'\n' => out.extend_from_slice(b"%0A"),
            // Not in the WHATWG rule, but a NUL must never reach a header line.
            0 => out.extend_from_slice(b"%00"),
            _ => out.push(byte),
        }
    }
}

fn needs_no_escape(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b != 0x7f)
}

/// Appends a field name escaped by `mode`.
pub fn push_name(out: &mut Vec<u8>, name: &str, mode: EscapeMode) {
    if needs_no_escape(name) && (mode != EscapeMode::Poster || name.is_ascii()) {
        out.extend_from_slice(name.as_bytes());
        return;
    }
    match mode {
        EscapeMode::Quoted => push_quoted(out, name),
        EscapeMode::Html5 => push_html5(out, name),
        EscapeMode::Poster => push_rfc2047(out, name),
    }
}

/// Appends a filename escaped by `mode`.
pub fn push_filename(out: &mut Vec<u8>, filename: &str, mode: EscapeMode) {
    let plain_for_poster = filename.is_ascii() && !filename.contains('\'');
    if needs_no_escape(filename) && (mode != EscapeMode::Poster || plain_for_poster) {
        out.extend_from_slice(filename.as_bytes());
        return;
    }
    match mode {
        EscapeMode::Quoted => push_quoted(out, filename),
        EscapeMode::Html5 => push_html5(out, filename),
        EscapeMode::Poster => push_poster_filename(out, filename),
    }
}

/// poster's name rule, `email.header.Header(name).encode()`: printable ASCII stays as it is
/// (with `"` and `\` backslash-escaped so the quoted string stays well formed); anything else
/// becomes RFC 2047 `=?utf-8?b?...?=` encoded-words of at most 76 characters, separated by a
/// space rather than Python's folding line break.
// 48 bytes of UTF-8 encode to 64 base64 characters: with `=?utf-8?b?` and `?=` that is the
// 76-column word Python 3's email.header produces.
const WORD_BYTES: usize = 48;

fn push_rfc2047(out: &mut Vec<u8>, name: &str) {
    if name.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        for &byte in name.as_bytes() {
            if byte == b'"' || byte == b'\\' {
                out.push(b'\\');
            }
            out.push(byte);
        }
        return;
    }
    let mut start = 0;
    let mut first = true;
    while start < name.len() {
        let mut end = start;
        for (offset, ch) in name[start..].char_indices() {
            let next = start + offset + ch.len_utf8();
            if next - start > WORD_BYTES {
                break;
            }
            end = next;
        }
        if !first {
            out.push(b' ');
        }
        first = false;
        out.extend_from_slice(b"=?utf-8?b?");
        push_base64(out, &name.as_bytes()[start..end]);
        out.extend_from_slice(b"?=");
        start = end;
    }
}

fn push_base64(out: &mut Vec<u8>, data: &[u8]) {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(TABLE[(n >> 18) as usize & 63]);
        out.push(TABLE[(n >> 12) as usize & 63]);
        out.push(if chunk.len() > 1 {
            TABLE[(n >> 6) as usize & 63]
        } else {
            b'='
        });
        out.push(if chunk.len() > 2 {
            TABLE[n as usize & 63]
        } else {
            b'='
        });
    }
}

/// poster's filename rule: non-ASCII characters become `&#N;`, then Python 2's `string_escape`
/// (`\` → `\\`, `'` → `\'`, TAB/LF/CR → `\t`/`\n`/`\r`, other controls → `\xNN`), then
/// `"` → `\"`.
fn push_poster_filename(out: &mut Vec<u8>, filename: &str) {
    for ch in filename.chars() {
        match ch {
            '\\' => out.extend_from_slice(b"\\\\"),
            '\'' => out.extend_from_slice(b"\\'"),
            '"' => out.extend_from_slice(b"\\\""),
            '\t' => out.extend_from_slice(b"\\t"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\0'..='\x1f' | '\x7f' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let b = ch as u8;
                out.extend_from_slice(&[
                    b'\\',
                    b'x',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ]);
            }
            c if c.is_ascii() => out.push(c as u8),
            c => out.extend_from_slice(format!("&#{};", u32::from(c)).as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str, mode: EscapeMode) -> String {
        let mut out = Vec::new();
        push_name(&mut out, s, mode);
        String::from_utf8(out).unwrap()
    }

    fn filename(s: &str, mode: EscapeMode) -> String {
        let mut out = Vec::new();
        push_filename(&mut out, s, mode);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn quoted_mode() {
        let q = EscapeMode::Quoted;
        assert_eq!(name("files[]", q), "files[]");
        assert_eq!(name("a\"b\\c", q), "a\\\"b\\\\c");
        assert_eq!(name("a\r\nb", q), "a%0D%0Ab");
        assert_eq!(name("a\tb\x00\x1b", q), "a\tb%00%1B");
        assert_eq!(name("résumé", q), "résumé");
    }

    #[test]
    fn html5_mode() {
        let h = EscapeMode::Html5;
        assert_eq!(filename("a\"b\\c", h), "a%22b\\c");
        assert_eq!(filename("a\r\nb", h), "a%0D%0Ab");
        assert_eq!(filename("☃.txt", h), "☃.txt");
    }

    #[test]
    fn poster_mode_matches_poster_0_8_1() {
        let p = EscapeMode::Poster;
        assert_eq!(name("\u{2603}", p), "=?utf-8?b?4piD?=");
        assert_eq!(name("café", p), "=?utf-8?b?Y2Fmw6k=?=");
        assert_eq!(name("foo baz", p), "foo baz");
        assert_eq!(filename("\u{2603}.txt", p), "&#9731;.txt");
        assert_eq!(filename("café.txt", p), "caf&#233;.txt");
        assert_eq!(filename("a\"b\\c.txt", p), "a\\\"b\\\\c.txt");
        assert_eq!(filename("a'b", p), "a\\'b");
        assert_eq!(filename("a\nb", p), "a\\nb");
    }

    #[test]
    fn poster_long_names_split_into_words() {
        let long = "é".repeat(40);
        let out = name(&long, EscapeMode::Poster);
        let words: Vec<&str> = out.split(' ').collect();
        assert_eq!(words.len(), 2);
        assert!(words.iter().all(|w| w.len() <= 76));
    }

    #[test]
    fn no_mode_lets_raw_cr_or_lf_through() {
        for mode in [EscapeMode::Quoted, EscapeMode::Html5, EscapeMode::Poster] {
            for s in ["a\rb", "a\nb", "\r\n\r\nX: y", "é\n"] {
                assert!(!name(s, mode).contains(['\r', '\n']), "{mode} {s:?}");
                assert!(!filename(s, mode).contains(['\r', '\n']), "{mode} {s:?}");
            }
        }
    }
}
