//! Module-level helpers that expose single pieces of the encoder, for the poster-compatible API.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::to_pyerr;

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

/// The size of the regular file at `path`, checked as a file part of a body is (not a directory
/// or special file, readable); `part` names the part in error messages.
#[pyfunction]
pub(crate) fn measure_file(py: Python<'_>, part: &str, path: &Bound<'_, PyAny>) -> PyResult<u64> {
    let path = crate::param::path_of(path)?;
    py.detach(|| poster_core::measure_file(part, &path))
        .map_err(to_pyerr)
}

/// Drops complete interim (`1xx`) responses from the start of what a server sent while the
/// body was going out; returns the rest and whether it is the start of a final response.
#[pyfunction]
pub(crate) fn strip_interim<'py>(py: Python<'py>, data: &[u8]) -> (Bound<'py, PyBytes>, bool) {
    let (rest, is_final) = poster_core::early_answer::strip_interim(data);
    (PyBytes::new(py, rest), is_final)
}

/// The boundary of a `multipart/form-data` Content-Type header value (raw bytes, as received);
/// `None` for another media type or without a boundary.
#[pyfunction]
pub(crate) fn form_boundary<'py>(
    py: Python<'py>,
    content_type: &[u8],
) -> Option<Bound<'py, PyBytes>> {
    poster_core::receive::form_boundary(content_type).map(|boundary| PyBytes::new(py, &boundary))
}
