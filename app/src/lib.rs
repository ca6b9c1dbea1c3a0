//! # ferrovis-app
//!
//! What the four task binaries (`classify`, `detect`, `segment`, `style`) share and a library
//! user of [`ferrovis_core`] does not need: the application layer between the core and the tasks.
//!
//! | module | what it holds |
//! |---|---|
//! | [`process`] | the one `main` every binary runs: allocator policy, logging to stderr, error and interrupt exit codes |
//! | [`interrupt`] | the Ctrl-C flag a training run stops on (exit status 130 afterwards) |
//! | [`args`] | the command-line arguments every binary declares the same way: `--device`, `--config`/`--set`/`key=value`, the common training flags, renamed flags |
//! | [`weights_command`] | `weights list\|download\|inspect\|convert` |
//! | [`pretrained`] | where a binary finds pretrained weights it was not given (`$FERROVIS_WEIGHTS`, torch.hub's cache, the registry) |
//! | [`demo_report`] | the demos' shared summary: one table, `summary.json` and `report.html` for all four tasks |
//! | [`allocator`] | glibc tuning that spares training steps re-faulting large tensors |

pub mod allocator;
pub mod args;
pub mod demo_report;
pub mod export;
pub mod interrupt;
pub mod pretrained;
pub mod process;
pub mod weights_command;
