//! Fast feed-forward style transfer: `style train` fits a [`TransformerNet`] to one style with the
//! perceptual loss on a frozen VGG (content at the content layers, Gram matrices at the style
//! layers, optional total variation), through the core engine (run folder, results.csv,
//! best/last weights, resume); `style predict` applies a trained network in one pass, `style val`
//! scores it with its run's loss, `style export` traces it.
//!
//! | file | command |
//! |---|---|
//! | `train.rs` | `style train`: [`FastConfig`], the [`FastTask`] the engine trains |
//! | `val.rs` | `style val`: [`Validation`] |
//! | `predict.rs` | `style predict`: [`load_transformer`], [`stylise_files`] |
//! | `export.rs` | `style export` |

mod export;
mod predict;
mod train;
mod val;

pub use export::export;
pub use predict::{load_transformer, stylise_files, stylise_video};
pub use train::{content_batch, train_fast, FastConfig, FastTask};
pub use val::{validate, Validation};
