//! An optional in-memory cache of decoded (and resized) images, for data sets small enough to
//! hold in RAM: each image is decoded once, the first time any epoch asks for it.

use std::sync::{Arc, OnceLock};

use crate::error::Result;

/// One slot per sample, filled on first use; safe to share between loader threads.
#[derive(Debug)]
pub struct Cache<T> {
    slots: Vec<OnceLock<Arc<T>>>,
}

impl<T> Cache<T> {
    /// An empty cache for `len` samples.
    pub fn new(len: usize) -> Self {
        Self {
            slots: (0..len).map(|_| OnceLock::new()).collect(),
        }
    }

    /// The cached value of `index`, computing it with `load` the first time. A failed load is not
    /// cached, so a transient error is retried next epoch.
    pub fn get_or_load(&self, index: usize, load: impl FnOnce() -> Result<T>) -> Result<Arc<T>> {
        let slot = &self.slots[index];
        if let Some(v) = slot.get() {
            return Ok(Arc::clone(v));
        }
        let value = Arc::new(load()?);
        // Two threads may race to fill a slot; both values are equal, keep the first.
        Ok(Arc::clone(slot.get_or_init(|| value)))
    }

    /// Number of filled slots.
    pub fn filled(&self) -> usize {
        self.slots.iter().filter(|s| s.get().is_some()).count()
    }
}
