//! The glue's only unsafe code, at the places where Python hands over raw resources: file
//! descriptors of file and socket objects, the storage of a `bytes` object being built, and
//! an object's membership of the cycle collector's lists.

use std::fs::File;
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, RawFd};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// A duplicate of descriptor `fd`, owned by the caller: it stays valid even if the Python
/// object it came from is closed meanwhile (for example by another thread while the GIL is
/// released).
#[allow(unsafe_code)]
pub(crate) fn dup_fd(fd: RawFd) -> PyResult<File> {
    if fd < 0 {
        return Err(PyValueError::new_err(format!(
            "invalid file descriptor {fd}"
        )));
    }
    // SAFETY: the descriptor belongs to a Python file or socket object that the caller holds,
    // with the GIL, for this whole call, so it is open while borrowed here; the duplicate made
    // from it is ours alone.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let owned = borrowed.try_clone_to_owned()?;
    Ok(File::from(owned))
}

/// A new `bytes` object of `len` bytes, written in place by `fill` without zero-filling it
/// first (that fill cost ~10 % of encoding throughput on an Intel Xeon). `fill` returns how
/// many bytes it wrote; anything but `len` is an error, and the object is then never seen.
#[allow(unsafe_code)]
pub(crate) fn bytes_filled_by(
    py: Python<'_>,
    len: usize,
    fill: impl FnOnce(&mut [MaybeUninit<u8>]) -> PyResult<usize>,
) -> PyResult<Bound<'_, PyBytes>> {
    let size = pyo3::ffi::Py_ssize_t::try_from(len)
        .map_err(|_| PyValueError::new_err(format!("a chunk of {len} bytes is too large")))?;
    // SAFETY: with a null pointer, `PyBytes_FromStringAndSize` returns a new `bytes` object
    // whose `len` bytes are uninitialised, or null with an exception set (handled by
    // `from_owned_ptr_or_err`). The object has one reference, ours, and reaches no Python code
    // before this function returns, so writing its storage cannot be observed. The slice covers
    // exactly those `len` bytes (plus nothing: the trailing NUL is left alone), and is typed
    // `MaybeUninit` so nothing can read a byte before it is written. It does not outlive
    // `object`, which keeps the storage alive.
    let (object, storage) = unsafe {
        let raw = pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), size);
        let object = Bound::from_owned_ptr_or_err(py, raw)?.cast_into_unchecked::<PyBytes>();
        let data = pyo3::ffi::PyBytes_AsString(raw).cast::<MaybeUninit<u8>>();
        (object, std::slice::from_raw_parts_mut(data, len))
    };
    let written = fill(storage)?;
    if written != len {
        return Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
            "internal error: expected {len} bytes, produced {written}"
        )));
    }
    Ok(object)
}

/// Tells the cycle collector to track `obj` or not. An object whose references are all atomic
/// (`str`, `bytes`, `None`) cannot be part of a cycle, so tracking it only costs: 100,000 tracked
/// parameters made the full collections that their allocation triggers take about half of the
/// time of building, encoding and iterating them (the same reasoning lets `CPython` untrack
/// tuples and dicts of atomic objects).
#[allow(unsafe_code)]
pub(crate) fn set_gc_tracked<T: pyo3::PyClass>(obj: &Bound<'_, T>, tracked: bool) {
    let ptr = obj.as_ptr();
    // SAFETY: `obj` is a live object: the `Bound` holds a reference and proves the thread is
    // attached to the interpreter. The three GC calls require a type with `Py_TPFLAGS_HAVE_GC`
    // (PyO3 gives every pyclass that flag, and subclasses inherit it), checked here all the
    // same. `PyObject_GC_Track` must not be called on a tracked object: each call below is made
    // only in the opposite state, as `PyObject_GC_IsTracked` reports it.
    unsafe {
        let flags = pyo3::ffi::PyType_GetFlags(pyo3::ffi::Py_TYPE(ptr));
        if flags & pyo3::ffi::Py_TPFLAGS_HAVE_GC == 0 {
            return;
        }
        let is_tracked = pyo3::ffi::PyObject_GC_IsTracked(ptr) == 1;
        if tracked && !is_tracked {
            pyo3::ffi::PyObject_GC_Track(ptr.cast());
        } else if !tracked && is_tracked {
            pyo3::ffi::PyObject_GC_UnTrack(ptr.cast());
        }
    }
}
