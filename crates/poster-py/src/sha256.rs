//! `Sha256`: SHA-256 of many buffers with the GIL released once, not once per buffer (a worker
//! thread hashing an upload piece by piece with `hashlib` queued behind the event loop for the
//! GIL at every piece).

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use sha2::{Digest, Sha256};

/// A SHA-256 hash being computed.
#[pyclass(module = "poster_rs._poster_rs", name = "Sha256")]
#[derive(Debug, Default)]
pub(crate) struct Sha256Py {
    state: Sha256,
}

#[pymethods]
impl Sha256Py {
    #[new]
    fn new() -> Sha256Py {
        Sha256Py::default()
    }

    /// Hashes `pieces`, in order, with the GIL released.
    #[allow(clippy::needless_pass_by_value)] // PyO3 extracts the list by value
    fn update_all(&mut self, py: Python<'_>, pieces: Vec<Bound<'_, PyBytes>>) {
        // bytes are immutable: the slices stay valid and unchanged while the GIL is released.
        let slices: Vec<&[u8]> = pieces.iter().map(PyBytesMethods::as_bytes).collect();
        let state = &mut self.state;
        py.detach(|| {
            for slice in slices {
                state.update(slice);
            }
        });
    }

    /// The digest of everything hashed so far, as 64 hexadecimal digits.
    fn hexdigest(&self) -> String {
        use std::fmt::Write;
        self.state
            .clone()
            .finalize()
            .iter()
            .fold(String::with_capacity(64), |mut hex, byte| {
                let _ = write!(hex, "{byte:02x}");
                hex
            })
    }
}
