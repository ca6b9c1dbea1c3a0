//! What the Rust sides of the C++ shims (`csrc/*.cpp`, built by `build.rs`) share: tch's tensor
//! handle, strings a shim allocated (error messages, the profiler's events), and a call's status
//! as an [`Error`].

use std::os::raw::{c_char, c_int, c_void};

use crate::{Error, Result};

/// tch's tensor handle (`torch_sys::C_tensor`), an `at::Tensor*` on the C++ side, passed
/// through untouched.
pub type CTensor = c_void;

extern "C" {
    fn fv_free_error(s: *mut c_char);
}

/// The text of a string a shim malloc'ed (and frees it); `None` for a null pointer.
pub fn take_string(s: *mut c_char) -> Option<String> {
    if s.is_null() {
        return None;
    }
    // SAFETY: a non-null `s` is a NUL-terminated string the shim malloc'ed for us.
    let text = unsafe { std::ffi::CStr::from_ptr(s) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: allocated by the shim with malloc, freed once here.
    unsafe { fv_free_error(s) };
    Some(text)
}

/// A shim call's outcome: `Ok` when it returned 0 with no message, otherwise an error that says
/// `what` failed and why.
pub fn status(rc: c_int, err: *mut c_char, what: &str) -> Result<()> {
    match take_string(err) {
        Some(message) => Err(Error::Invalid(format!("{what}: {message}"))),
        None if rc != 0 => Err(Error::Invalid(format!("{what} failed"))),
        None => Ok(()),
    }
}
