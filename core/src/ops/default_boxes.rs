//! torchvision's `DefaultBoxGenerator` (SSD): on each feature map, at every cell centre, a square
//! box of the level's scale, one of the geometric mean of this and the next scale, and a pair of
//! boxes per aspect ratio; sizes relative to the image, clipped to [0, 1] by default, then in
//! pixels as `[x1, y1, x2, y2]`. SSD300 has 8,732 of them.

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// SSD's default boxes, as torchvision generates them.
#[derive(Debug)]
pub struct DefaultBoxGenerator {
    /// Aspect ratios per feature map (each gives a `w:h` and an `h:w` box).
    pub aspect_ratios: Vec<Vec<f64>>,
    /// One scale per feature map and one more (for the last level's intermediate box).
    pub scales: Vec<f64>,
    /// Tiling step per feature map in pixels (`None`: the feature map's own size).
    pub steps: Option<Vec<f64>>,
    /// Clip the relative widths and heights to [0, 1].
    pub clip: bool,
    /// `(2 + 2·ratios, 2)` relative `(w, h)` per feature map, float32.
    wh_pairs: Vec<Tensor>,
}

impl DefaultBoxGenerator {
    /// torchvision's constructor: `scales` when given, else evenly from `min_ratio` to `max_ratio`
    /// plus 1.0; `steps` when given.
    pub fn new(
        aspect_ratios: Vec<Vec<f64>>,
        min_ratio: f64,
        max_ratio: f64,
        scales: Option<Vec<f64>>,
        steps: Option<Vec<f64>>,
        clip: bool,
    ) -> Result<Self> {
        let n = aspect_ratios.len();
        if n == 0 {
            return Err(Error::Invalid(
                "default boxes: no feature maps (aspect_ratios is empty)".into(),
            ));
        }
        if steps.as_ref().is_some_and(|s| s.len() != n) {
            return Err(Error::Invalid(format!(
                "default boxes: {n} aspect-ratio sets but {} steps",
                steps.as_ref().map_or(0, Vec::len)
            )));
        }
        let scales = match scales {
            Some(s) if s.len() != n + 1 => {
                return Err(Error::Invalid(format!(
                    "default boxes: {} scales for {n} feature maps ({} expected)",
                    s.len(),
                    n + 1
                )))
            }
            Some(s) => s,
            None if n > 1 => {
                let range = max_ratio - min_ratio;
                let mut s: Vec<f64> = (0..n)
                    .map(|k| min_ratio + range * k as f64 / (n as f64 - 1.0))
                    .collect();
                s.push(1.0);
                s
            }
            None => vec![min_ratio, max_ratio],
        };
        let wh_pairs = (0..n)
            .map(|k| {
                let s_k = scales[k];
                let s_prime = (scales[k] * scales[k + 1]).sqrt();
                let mut pairs = vec![s_k, s_k, s_prime, s_prime];
                for ar in &aspect_ratios[k] {
                    let sq = ar.sqrt();
                    let (w, h) = (s_k * sq, s_k / sq);
                    pairs.extend([w, h, h, w]);
                }
                let pairs: Vec<f32> = pairs.into_iter().map(|v| v as f32).collect();
                Tensor::from_slice(&pairs).view([-1, 2])
            })
            .collect();
        Ok(DefaultBoxGenerator {
            aspect_ratios,
            scales,
            steps,
            clip,
            wh_pairs,
        })
    }

    /// `ssd300_vgg16`'s: ratios `[2]`, `[2, 3]` ×3, `[2]`, `[2]`; scales 0.07 … 1.05; steps 8 … 300.
    pub fn ssd300() -> Self {
        let ratios = vec![
            vec![2.0],
            vec![2.0, 3.0],
            vec![2.0, 3.0],
            vec![2.0, 3.0],
            vec![2.0],
            vec![2.0],
        ];
        let scales = vec![0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05];
        let steps = vec![8.0, 16.0, 32.0, 64.0, 100.0, 300.0];
        Self::new(ratios, 0.15, 0.9, Some(scales), Some(steps), true)
            .expect("six levels, seven scales, six steps")
    }

    /// `ssdlite320_mobilenet_v3_large`'s: ratios [2, 3] on six maps, scales 0.2 … 0.95.
    pub fn ssdlite() -> Self {
        Self::new(vec![vec![2.0, 3.0]; 6], 0.2, 0.95, None, None, true).expect("six levels")
    }

    /// Default boxes per location of each feature map.
    pub fn num_anchors_per_location(&self) -> Vec<i64> {
        self.aspect_ratios
            .iter()
            .map(|r| 2 + 2 * r.len() as i64)
            .collect()
    }

    /// The default boxes `(N, 4)`, `[x1, y1, x2, y2]` in pixels, of an image of `image_size`
    /// `(h, w)` over feature maps of `grid_sizes`, level after level, row-major cells.
    pub fn boxes(
        &self,
        image_size: (i64, i64),
        grid_sizes: &[(i64, i64)],
        device: Device,
    ) -> Result<Tensor> {
        if grid_sizes.len() != self.wh_pairs.len() {
            return Err(Error::Invalid(format!(
                "default boxes: {} feature maps for {} levels",
                grid_sizes.len(),
                self.wh_pairs.len()
            )));
        }
        let mut all = Vec::with_capacity(grid_sizes.len());
        for (k, &(fh, fw)) in grid_sizes.iter().enumerate() {
            let (y_fk, x_fk) = match &self.steps {
                Some(steps) => (
                    image_size.0 as f64 / steps[k],
                    image_size.1 as f64 / steps[k],
                ),
                None => (fh as f64, fw as f64),
            };
            let xs = (Tensor::arange(fw, (Kind::Int64, Device::Cpu)) + 0.5) / x_fk;
            let ys = (Tensor::arange(fh, (Kind::Int64, Device::Cpu)) + 0.5) / y_fk;
            let grid = Tensor::meshgrid_indexing(
                &[&ys.to_kind(Kind::Float), &xs.to_kind(Kind::Float)],
                "ij",
            );
            let (sy, sx) = (grid[0].reshape([-1]), grid[1].reshape([-1]));
            let pairs = &self.wh_pairs[k];
            let per_cell = pairs.size()[0];
            let xy: Vec<&Tensor> = (0..per_cell).flat_map(|_| [&sx, &sy]).collect();
            let shifts = Tensor::stack(&xy, -1).reshape([-1, 2]);
            let wh = if self.clip {
                pairs.clamp(0.0, 1.0)
            } else {
                pairs.shallow_clone()
            };
            let wh = wh.repeat([fh * fw, 1]);
            all.push(Tensor::cat(&[shifts, wh], 1));
        }
        let cxcywh = Tensor::cat(&all, 0);
        let size = Tensor::from_slice(&[image_size.1, image_size.0]);
        let (c, wh) = (cxcywh.narrow(1, 0, 2), cxcywh.narrow(1, 2, 2));
        let half = &wh * 0.5;
        let xyxy = Tensor::cat(&[(&c - &half) * &size, (c + half) * size], -1);
        Ok(xyxy.to_device(device))
    }
}
