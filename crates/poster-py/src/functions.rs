//! Module-level helpers that expose single pieces of the encoder, for the poster-compatible API.

use poster_core::header::{self, PartHead};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::to_pyerr;
use crate::stream::parse_escape;

/// A part's header block (`--B CRLF ... CRLF CRLF`), validated and escaped as the encoder
/// writes it.
#[pyfunction]
#[allow(clippy::too_many_arguments)] // mirrors the keyword arguments Python passes
#[pyo3(signature = (boundary, name, filename=None, content_type=None, headers=None, *, escape="quoted", is_file=false))]
pub(crate) fn render_header<'py>(
    py: Python<'py>,
    boundary: &str,
    name: &str,
    filename: Option<&str>,
    content_type: Option<&str>,
    headers: Option<Vec<(String, String)>>,
    escape: &str,
    is_file: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let mode = parse_escape(escape)?;
    poster_core::boundary::validate(boundary).map_err(to_pyerr)?;
    let headers = headers.unwrap_or_default();
    let head = PartHead {
        name,
        filename,
        content_type,
        headers: &headers,
        is_file,
    };
    header::validate(&head).map_err(to_pyerr)?;
    let mut out = Vec::with_capacity(128);
    header::render(&mut out, boundary, &head, mode);
    Ok(PyBytes::new(py, &out))
}

/// A new boundary: 32 hex digits, 128 random bits.
#[pyfunction]
pub(crate) fn gen_boundary() -> PyResult<String> {
    poster_core::boundary::generate().map_err(to_pyerr)
}

/// Raises `BoundaryError` unless `boundary` is 1-70 RFC 2046 bchars not ending in a space.
#[pyfunction]
pub(crate) fn validate_boundary(boundary: &str) -> PyResult<()> {
    poster_core::boundary::validate(boundary).map_err(to_pyerr)
}

/// `multipart/form-data; boundary=...`, quoting the boundary when it needs it.
#[pyfunction]
pub(crate) fn content_type_for(boundary: &str) -> String {
    poster_core::boundary::content_type(boundary)
}

/// Where `--boundary` of a delimiter starts in part data (data that starts with `--boundary`
/// counts, as the part header ends with CRLF), or `None`.
#[pyfunction]
pub(crate) fn find_delimiter(boundary: &str, data: &[u8]) -> Option<u64> {
    poster_core::boundary::find_delimiter(boundary, data).map(|at| at.max(0) as u64)
}

/// Drops complete interim (`1xx`) responses from the start of what a server sent while the
/// body was going out; returns the rest and whether it is the start of a final response.
#[pyfunction]
pub(crate) fn strip_interim<'py>(py: Python<'py>, data: &[u8]) -> (Bound<'py, PyBytes>, bool) {
    let (rest, is_final) = poster_core::early_answer::strip_interim(data);
    (PyBytes::new(py, rest), is_final)
}
