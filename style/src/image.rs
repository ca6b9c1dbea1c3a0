//! Images as tensors for style transfer: RGB in [0, 1], `(1, 3, H, W)`; loading at a chosen
//! longer side, saving, and colour preservation.

use std::path::Path;

use anyhow::{Context, Result};
use ferrovis_data::decode::{read_rgb, write_rgb};
use ferrovis_data::image::RgbImage;
use ferrovis_data::transform::{resize, Filter};
use tch::{Device, Kind, Tensor};

/// Reads `path` with its longer side resized to `size` (0: as it is).
pub fn load(path: &Path, size: usize, device: Device) -> Result<Tensor> {
    let img = read_rgb(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(to_tensor(&fit(img, size)?).to_device(device))
}

/// `img` with its longer side resized to `size` (0: as it is), bilinearly.
pub fn fit(img: RgbImage, size: usize) -> Result<RgbImage> {
    if size == 0 || img.width.max(img.height) == size {
        return Ok(img);
    }
    let scale = size as f64 / img.width.max(img.height) as f64;
    let w = ((img.width as f64 * scale).round() as usize).max(1);
    let h = ((img.height as f64 * scale).round() as usize).max(1);
    Ok(resize(&img, w, h, Filter::Bilinear)?)
}

/// `(1, 3, H, W)` in [0, 1].
pub fn to_tensor(img: &RgbImage) -> Tensor {
    Tensor::from_slice(&img.data)
        .view([img.height as i64, img.width as i64, 3])
        .permute([2, 0, 1])
        .unsqueeze(0)
        .to_kind(Kind::Float)
        / 255.0
}

/// The first image of a batch as 8-bit RGB (clamped to [0, 1]).
pub fn to_image(x: &Tensor) -> Result<RgbImage> {
    let t = (x.detach().get(0).clamp(0.0, 1.0) * 255.0)
        .round()
        .to_kind(Kind::Uint8)
        .permute([1, 2, 0])
        .contiguous()
        .to_device(Device::Cpu);
    let (h, w) = (t.size()[0] as usize, t.size()[1] as usize);
    Ok(RgbImage {
        width: w,
        height: h,
        data: Vec::<u8>::try_from(&t.view(-1))?,
    })
}

/// Writes the first image of `x` to `path` (PNG or JPEG by extension).
pub fn save(x: &Tensor, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    write_rgb(path, &to_image(x)?).with_context(|| format!("writing {}", path.display()))
}

fn rgb_to_yiq(x: &Tensor) -> Tensor {
    let m = Tensor::from_slice(&[
        0.299f32, 0.587, 0.114, 0.596, -0.274, -0.322, 0.211, -0.523, 0.312,
    ])
    .view([3, 3])
    .to_device(x.device());
    Tensor::einsum("ij,njhw->nihw", &[m, x.shallow_clone()], None::<i64>)
}

fn yiq_to_rgb(x: &Tensor) -> Tensor {
    let m = Tensor::from_slice(&[
        1.0f32, 0.956, 0.621, 1.0, -0.272, -0.647, 1.0, -1.106, 1.703,
    ])
    .view([3, 3])
    .to_device(x.device());
    Tensor::einsum("ij,njhw->nihw", &[m, x.shallow_clone()], None::<i64>)
}

/// Colour preservation (Gatys et al., 2016, luminance-only transfer): the stylised image's
/// luminance with the content image's chrominance (YIQ), so the result keeps the content's
/// colours and takes the style's texture.
pub fn keep_colors(stylised: &Tensor, content: &Tensor) -> Tensor {
    let s = rgb_to_yiq(stylised);
    let c = rgb_to_yiq(content);
    let y = s.narrow(1, 0, 1);
    let iq = c.narrow(1, 1, 2);
    yiq_to_rgb(&Tensor::cat(&[y, iq], 1)).clamp(0.0, 1.0)
}

/// Peak signal-to-noise ratio in dB of two images in [0, 1].
pub fn psnr(a: &Tensor, b: &Tensor) -> f64 {
    let mse = (a - b).square().mean(Kind::Double).double_value(&[]);
    10.0 * (1.0 / mse.max(1e-12)).log10()
}
