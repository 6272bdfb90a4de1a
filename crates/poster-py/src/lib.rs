//! `PyO3` bindings for `poster-core`: the compiled module `poster_rs._poster_rs`. Only glue lives
//! here; the encoder is in `poster-core`.

mod errors;
mod functions;
mod parts;
mod raw;
mod reader;
mod stream;

use pyo3::prelude::*;

#[pymodule(gil_used = false)]
fn _poster_rs(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<stream::StreamPy>()?;
    m.add_function(wrap_pyfunction!(functions::render_header, m)?)?;
    m.add_function(wrap_pyfunction!(functions::gen_boundary, m)?)?;
    m.add_function(wrap_pyfunction!(functions::validate_boundary, m)?)?;
    m.add_function(wrap_pyfunction!(functions::content_type_for, m)?)?;
    m.add_function(wrap_pyfunction!(functions::find_delimiter, m)?)?;
    m.add_function(wrap_pyfunction!(functions::strip_interim, m)?)?;
    errors::register(m)?;
    Ok(())
}
