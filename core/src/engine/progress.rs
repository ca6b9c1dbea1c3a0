//! Per-epoch progress: an indicatif bar (it/s, ETA, running loss) on a terminal, and a few plain
//! lines on stderr otherwise (CI logs, pipes), so logs stay readable either way.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// Progress of one epoch.
pub struct EpochProgress {
    bar: Option<ProgressBar>,
    label: String,
    steps: usize,
    every: usize,
}

impl EpochProgress {
    /// Starts the display for `epoch` (1-based) of `epochs`, with `steps` steps.
    pub fn new(epoch: usize, epochs: usize, steps: usize, quiet: bool) -> Self {
        let label = format!("epoch {epoch}/{epochs}");
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(steps as u64);
            let style =
                ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(label.clone());
            bar
        });
        let every = if quiet {
            usize::MAX
        } else {
            (steps / 4).max(1)
        };
        EpochProgress {
            bar,
            label,
            steps,
            every,
        }
    }

    /// Reports step `step` (0-based) with the running mean loss.
    pub fn step(&self, step: usize, running_loss: f64) {
        match &self.bar {
            Some(bar) => {
                bar.set_message(format!("{} loss {running_loss:.4}", self.label));
                bar.inc(1);
            }
            None if (step + 1).is_multiple_of(self.every)
                || step + 1 == self.steps && self.every != usize::MAX =>
            {
                eprintln!(
                    "{} step {}/{} loss {running_loss:.4}",
                    self.label,
                    step + 1,
                    self.steps
                );
            }
            None => {}
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
