//! The `escape=` argument, converted to the core's `EscapeMode` once, where Python hands it over.

use poster_core::EscapeMode;
use poster_core::escape::UnknownEscapeMode;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyString;

/// `"quoted"`, `"html5"` or `"poster"` (`Literal` in the stub).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Escape(pub(crate) EscapeMode);

impl<'a, 'py> FromPyObject<'a, 'py> for Escape {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let name = obj.cast::<PyString>()?;
        name.to_str()?
            .parse()
            .map(Escape)
            .map_err(|e: UnknownEscapeMode| PyValueError::new_err(e.to_string()))
    }
}
