//! The C interface of `csrc/distributed.cpp` (built by `build.rs`). `*mut C_tensor` is tch's
//! handle, an `at::Tensor*` on the C++ side.

use std::os::raw::{c_char, c_double, c_int};

pub use crate::shim::CTensor;

/// An opaque `fv_group` (store + c10d backend).
#[repr(C)]
pub struct FvGroup {
    _private: [u8; 0],
}

extern "C" {
    #[allow(clippy::too_many_arguments)]
    pub fn fv_group_new(
        host: *const c_char,
        port: c_int,
        is_server: c_int,
        rank: c_int,
        world: c_int,
        backend: c_int,
        prefix: *const c_char,
        timeout_s: c_double,
        err: *mut *mut c_char,
    ) -> *mut FvGroup;
    pub fn fv_group_free(group: *mut FvGroup);
    pub fn fv_all_reduce(
        group: *mut FvGroup,
        tensors: *mut *mut CTensor,
        n: c_int,
        op: c_int,
        err: *mut *mut c_char,
    ) -> c_int;
    pub fn fv_broadcast(
        group: *mut FvGroup,
        tensors: *mut *mut CTensor,
        n: c_int,
        root: c_int,
        err: *mut *mut c_char,
    ) -> c_int;
    pub fn fv_all_gather(
        group: *mut FvGroup,
        outputs: *mut *mut CTensor,
        world: c_int,
        input: *mut CTensor,
        err: *mut *mut c_char,
    ) -> c_int;
    pub fn fv_barrier(group: *mut FvGroup, err: *mut *mut c_char) -> c_int;
}
