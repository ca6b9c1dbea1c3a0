//! The `style` task: neural style transfer with VGG features — by optimisation (Gatys et al.,
//! L-BFGS or Adam), in one pass by feature statistics (AdaIN, WCT) with a relu3_1
//! encoder/decoder, and with a feed-forward network trained for one style (Johnson et al.).
//! `main.rs` only runs [`cli::run`]; the commands live in [`cli`], one function each, so other
//! programs can call them.
//!
//! | file | what it holds |
//! |---|---|
//! | `cli.rs` | the command line and one function per command |
//! | `features.rs`, `r31.rs` | the VGG feature networks: torchvision's, and the relu3_1 encoder/decoder |
//! | `loss.rs` | Gram matrices, content/style/TV losses, the perceptual loss |
//! | `gatys.rs` | `transfer`: optimising an image |
//! | `arbitrary.rs` | `adain`, `wct` |
//! | `transformer.rs`, `fast/` | the feed-forward network; `train`, `val`, `predict`, `export` |
//! | `image.rs` | loading, saving, colour preservation |
//! | `run.rs` | a run folder's record (`style.json`) |
//! | `demo.rs` | the embedded cat and Starry Night |

pub mod arbitrary;
pub mod cli;
pub mod demo;
pub mod fast;
pub mod features;
pub mod gatys;
pub mod image;
pub mod loss;
pub mod r31;
pub mod run;
pub mod transformer;

pub use cli::{run, Cli};
