//! Helpers for the cross-crate tests (PyTorch reference scripts arrive with the checkpoint tests).
