//! Ctrl-C during training: the first stops the run after the current step (the engine keeps the
//! last completed epoch's checkpoint, see [`ferrovis_core::engine::RunControl::stop`]), a second
//! quits at once. Either way the process ends with status 130, as a shell reports a command
//! stopped by SIGINT, so a script can tell an interrupted run from a finished one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use ferrovis_core::error::{Error, Result};

/// The exit status of a process stopped by SIGINT (128 + 2).
pub const EXIT_INTERRUPTED: u8 = 130;

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// The process's interrupt flag, with the Ctrl-C handler that sets it installed on first use
/// (pass it as [`ferrovis_core::engine::RunControl::stop`]). The flag and the handler are one
/// per process: every call returns the same flag, and the handler is installed once.
pub fn flag() -> Result<Arc<AtomicBool>> {
    static INSTALLED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    let flag = FLAG
        .get_or_init(|| Arc::new(AtomicBool::new(false)))
        .clone();
    INSTALLED
        .get_or_init(|| {
            let f = flag.clone();
            ctrlc::set_handler(move || {
                if f.swap(true, Ordering::SeqCst) {
                    std::process::exit(EXIT_INTERRUPTED.into());
                }
                eprintln!("\ninterrupt: stopping after this step (Ctrl-C again to quit at once)");
            })
            .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| Error::Invalid(format!("cannot install the Ctrl-C handler: {e}")))?;
    Ok(flag)
}

/// Whether Ctrl-C was pressed since [`flag`] installed the handler.
pub fn interrupted() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::SeqCst))
}
