//! `FormParser`: the core's streaming multipart/form-data parser, for `poster-rs serve`.

use poster_core::receive::{FormEvent, FormLimits, FormParser};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::errors::form_data_error;

/// Parses a request body chunk by chunk; `feed` returns what each chunk held.
#[pyclass(module = "poster_rs._poster_rs", name = "FormParser")]
#[derive(Debug)]
pub(crate) struct FormParserPy {
    /// Boxed: memchr's AVX2 searcher inside needs 32-byte alignment, and Python allocates a
    /// pyclass's object with 16 (unboxed, its aligned loads crashed).
    parser: Box<FormParser>,
}

const _: () = assert!(std::mem::align_of::<FormParserPy>() <= 16);

#[pymethods]
impl FormParserPy {
    #[new]
    fn new(boundary: &[u8], max_parts: usize, max_part_header: usize) -> PyResult<FormParserPy> {
        let limits = FormLimits {
            max_parts,
            max_part_header,
        };
        let parser = FormParser::new(boundary, limits).map_err(|err| form_data_error(&err))?;
        Ok(FormParserPy {
            parser: Box::new(parser),
        })
    }

    /// The events of `chunk`, in order: a list of `(name, value)` header lines where a part
    /// starts, `bytes` of its data, `None` where it ends. Data that is the whole chunk is the
    /// chunk itself; a part of it is copied (bytes, unlike a view, can be hashed with the GIL
    /// released and written without a copy).
    fn feed<'py>(&mut self, chunk: &Bound<'py, PyBytes>) -> PyResult<Bound<'py, PyList>> {
        let py = chunk.py();
        let input = chunk.as_bytes();
        let events = PyList::empty(py);
        let mut failure = None;
        let mut sink = |event: FormEvent<'_>| {
            let item = match event {
                FormEvent::Data(data)
                    if data.as_ptr() == input.as_ptr() && data.len() == input.len() =>
                {
                    Ok(chunk.clone().into_any())
                }
                FormEvent::Data(data) => Ok(PyBytes::new(py, data).into_any()),
                FormEvent::PartStart(headers) => headers
                    .iter()
                    .map(|(name, value)| {
                        PyTuple::new(py, [PyBytes::new(py, name), PyBytes::new(py, value)])
                    })
                    .collect::<PyResult<Vec<_>>>()
                    .and_then(|lines| PyList::new(py, lines))
                    .map(Bound::into_any),
                FormEvent::PartEnd => Ok(py.None().into_bound(py)),
                FormEvent::End => return,
            };
            if let Err(err) = item.and_then(|item| events.append(item)) {
                failure.get_or_insert(err);
            }
        };
        self.parser
            .feed(input, &mut sink)
            .map_err(|err| form_data_error(&err))?;
        match failure {
            Some(err) => Err(err),
            None => Ok(events),
        }
    }

    /// Ends the body: `ValueError` unless its close delimiter has been seen.
    fn finish(&mut self) -> PyResult<()> {
        self.parser.finish().map_err(|err| form_data_error(&err))
    }

    /// Whether the close delimiter has been seen.
    #[getter]
    fn complete(&self) -> bool {
        self.parser.is_complete()
    }
}
