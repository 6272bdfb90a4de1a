//! Python file-like objects as part data: read through their `read`, rewound with `seek`.

use std::io;

use poster_core::PartReader;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// A Python object with `read(n)`, and with `seek` when `start` is known.
pub(crate) struct PyReader {
    obj: Py<PyAny>,
    start: Option<u64>,
}

impl PyReader {
    pub(crate) fn new(obj: Py<PyAny>, start: Option<u64>) -> PyReader {
        PyReader { obj, start }
    }
}

impl PartReader for PyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // The encoder may run with the GIL released; take it back for the Python call.
        Python::attach(|py| {
            let data = self.obj.bind(py).call_method1("read", (buf.len(),))?;
            let bytes = data.cast::<PyBytes>().map_err(|_| {
                pyo3::exceptions::PyTypeError::new_err(format!(
                    "read() returned {} instead of bytes: open the file in binary mode ('rb')",
                    data.get_type()
                        .name()
                        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
                ))
            })?;
            let data = bytes.as_bytes();
            if data.len() > buf.len() {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "read({}) returned {} bytes",
                    buf.len(),
                    data.len()
                )));
            }
            buf[..data.len()].copy_from_slice(data);
            Ok(data.len())
        })
        .map_err(io::Error::from)
    }

    fn rewind(&mut self) -> io::Result<()> {
        let Some(start) = self.start else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the file object cannot seek",
            ));
        };
        Python::attach(|py| self.obj.bind(py).call_method1("seek", (start,)).map(|_| ()))
            .map_err(io::Error::from)
    }
}
