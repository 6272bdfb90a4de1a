//! `Sha256`: SHA-256 of many buffers with the GIL released once, not once per buffer (a worker
//! thread hashing an upload piece by piece with `hashlib` queued behind the event loop for the
//! GIL at every piece); or, for a large part, on a thread of its own that never takes the GIL.

use std::sync::mpsc;
use std::thread;

use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use sha2::{Digest, Sha256};

/// Batches queued for a hashing thread before `update_later` waits for it: the receiver of
/// an upload is slowed down rather than buffering without bound.
const QUEUED_BATCHES: usize = 4;

/// A hashing thread and the way to feed it.
#[derive(Debug)]
struct Hasher {
    batches: mpsc::SyncSender<Vec<PyBackedBytes>>,
    done: thread::JoinHandle<Sha256>,
}

/// A SHA-256 hash being computed.
#[pyclass(module = "poster_rs._poster_rs", name = "Sha256")]
#[derive(Debug, Default)]
pub(crate) struct Sha256Py {
    /// The running state, but while a hashing thread exists: that thread holds it then.
    state: Sha256,
    hasher: Option<Hasher>,
}

// Python allocates the object on a 16-byte boundary (see form_parser.rs).
const _: () = assert!(std::mem::align_of::<Sha256Py>() <= 16);

impl Sha256Py {
    /// The hash of everything given so far, once any hashing thread has finished.
    fn settle(&mut self, py: Python<'_>) -> PyResult<()> {
        if let Some(Hasher { batches, done }) = self.hasher.take() {
            drop(batches);
            self.state = py.detach(|| done.join()).map_err(|_| {
                pyo3::exceptions::PyRuntimeError::new_err("the hashing thread panicked")
            })?;
        }
        Ok(())
    }
}

#[pymethods]
impl Sha256Py {
    #[new]
    fn new() -> Sha256Py {
        Sha256Py::default()
    }

    /// Hashes `pieces`, in order, with the GIL released.
    #[allow(clippy::needless_pass_by_value)] // PyO3 extracts the list by value
    fn update_all(&mut self, py: Python<'_>, pieces: Vec<PyBackedBytes>) -> PyResult<()> {
        self.settle(py)?;
        let state = &mut self.state;
        py.detach(|| {
            for piece in &pieces {
                state.update(piece);
            }
        });
        Ok(())
    }

    /// Queues `pieces` for a hashing thread of this hash's own (started by the first call),
    /// which hashes without ever taking the GIL; waits, with the GIL released, only while
    /// that thread is several batches behind.
    fn update_later(&mut self, py: Python<'_>, pieces: Vec<PyBackedBytes>) -> PyResult<()> {
        if self.hasher.is_none() {
            let (batches, queue) = mpsc::sync_channel::<Vec<PyBackedBytes>>(QUEUED_BATCHES);
            let mut state = std::mem::take(&mut self.state);
            let done = thread::Builder::new()
                .name("poster-rs-sha256".into())
                .spawn(move || {
                    for batch in queue {
                        for piece in &batch {
                            state.update(piece);
                        }
                    }
                    state
                })?;
            self.hasher = Some(Hasher { batches, done });
        }
        let Some(hasher) = &self.hasher else {
            unreachable!("started above")
        };
        let batches = hasher.batches.clone();
        py.detach(move || batches.send(pieces))
            .map_err(|_| pyo3::exceptions::PyRuntimeError::new_err("the hashing thread stopped"))
    }

    /// The digest of everything hashed so far, as 64 hexadecimal digits.
    fn hexdigest(&mut self, py: Python<'_>) -> PyResult<String> {
        use std::fmt::Write;
        self.settle(py)?;
        Ok(self
            .state
            .clone()
            .finalize()
            .iter()
            .fold(String::with_capacity(64), |mut hex, byte| {
                let _ = write!(hex, "{byte:02x}");
                hex
            }))
    }
}
