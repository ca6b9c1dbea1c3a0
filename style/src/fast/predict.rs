//! `style predict`: a trained network applied to image files in one pass each.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ferrovis_core::checkpoint::{self, LoadOptions};
use ferrovis_core::run::resolve_weights;
use tch::nn::VarStore;
use tch::{Device, Tensor};

use ferrovis_data::image::RgbImage;
use ferrovis_data::sources::{SkipLog, Source};
use ferrovis_data::video::{run_frames, VideoOptions, VideoOutcome};

use crate::image;
use crate::transformer::TransformerNet;

/// A trained transformation network: a run folder (its best weights) or a weights file, such as
/// the PyTorch examples' `candy.pth` (their stale InstanceNorm statistics are ignored).
pub fn load_transformer(path: &Path, device: Device) -> Result<(VarStore, TransformerNet)> {
    let file = resolve_weights(path)?.file;
    let mut vs = VarStore::new(device);
    let net = TransformerNet::new(&vs.root());
    let opts = LoadOptions::default()
        .strict(true)
        .skip("running_(mean|var)$")?;
    checkpoint::load_file(&vs, &file, &opts)
        .with_context(|| format!("{} is not a TransformerNet", file.display()))?;
    vs.freeze();
    Ok((vs, net))
}

/// Stylises every frame of a video, camera or stream (scaled so the longer side is `size`,
/// unless 0) into the video `<out>/<stem>.avi` (as `opts` says).
pub fn stylise_video(
    net: &TransformerNet,
    source: &Source,
    size: usize,
    out: &Path,
    opts: &VideoOptions,
    device: Device,
) -> Result<VideoOutcome> {
    run_frames(source, out, opts, |frame| -> Result<RgbImage> {
        let x = image::to_tensor(&image::fit(frame.image, size)?).to_device(device);
        let y = tch::no_grad(|| net.forward(&x));
        image::to_image(&y)
    })
}

/// Stylises `files` (scaled so the longer side is `size`, unless 0) into `out`, one PNG per
/// image named after it; returns how many were written. The next image is decoded and the
/// previous one encoded on their own threads while the network runs on this one, so the
/// network's time is the whole time when it is the slowest stage. A file that cannot be read
/// is recorded in `skipped` and the others go on.
pub fn stylise_files(
    net: &TransformerNet,
    files: &[PathBuf],
    size: usize,
    out: &Path,
    device: Device,
    skipped: &mut SkipLog,
) -> Result<usize> {
    std::thread::scope(|scope| {
        let (decoded_tx, decoded) = std::sync::mpsc::sync_channel::<(PathBuf, Result<Tensor>)>(1);
        let (stylised, stylised_rx) = std::sync::mpsc::sync_channel::<(PathBuf, Tensor)>(1);
        scope.spawn(move || {
            for f in files {
                let item = image::load(f, size, Device::Cpu);
                // A closed channel means the network stopped: nothing more to decode.
                if decoded_tx.send((f.clone(), item)).is_err() {
                    break;
                }
            }
        });
        let writer = scope.spawn(move || -> Result<usize> {
            let mut written = 0;
            for (path, y) in stylised_rx {
                image::save(&y, &path)?;
                written += 1;
            }
            Ok(written)
        });
        for (file, item) in decoded {
            let x = match item {
                Ok(x) => x,
                Err(e) => {
                    skipped.skip(&file, e);
                    continue;
                }
            };
            let y = tch::no_grad(|| net.forward(&x.to_device(device)));
            let name = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "image".into());
            // A closed channel means the writer failed: its error is returned below.
            if stylised.send((out.join(format!("{name}.png")), y)).is_err() {
                break;
            }
        }
        drop(stylised);
        writer
            .join()
            .map_err(|_| anyhow::anyhow!("the PNG writer thread panicked"))?
    })
}
