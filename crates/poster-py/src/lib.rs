//! `PyO3` bindings for `poster-core`: the compiled module `poster_rs._poster_rs`. Only glue lives
//! here; the encoder is in `poster-core`.

mod errors;
mod escape;
mod form_parser;
mod functions;
mod param;
mod parts;
mod raw;
mod reader;
mod sha256;
mod stream;

use pyo3::prelude::*;

#[pymodule(gil_used = false)]
fn _poster_rs(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<stream::StreamPy>()?;
    m.add_class::<param::ParamPy>()?;
    m.add_class::<param::DataCheckerPy>()?;
    m.add_class::<form_parser::FormParserPy>()?;
    m.add_class::<sha256::Sha256Py>()?;
    m.add(
        "PART_END",
        pyo3::types::PyBytes::new(m.py(), poster_core::single::PART_END),
    )?;
    m.add_function(wrap_pyfunction!(functions::gen_boundary, m)?)?;
    m.add_function(wrap_pyfunction!(functions::validate_boundary, m)?)?;
    m.add_function(wrap_pyfunction!(functions::content_type_for, m)?)?;
    m.add_function(wrap_pyfunction!(functions::form_boundary, m)?)?;
    m.add_function(wrap_pyfunction!(functions::measure_file, m)?)?;
    m.add_function(wrap_pyfunction!(functions::strip_interim, m)?)?;
    Ok(())
}
