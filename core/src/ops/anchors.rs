//! torchvision's `AnchorGenerator` (Faster R-CNN): for each feature map, `sizes × aspect_ratios`
//! anchors centred on every cell, cell anchors rounded to whole pixels, the stride of a level
//! the image size divided by its grid size, rounded down (so an image whose size is no multiple
//! of the stride keeps torchvision's anchors exactly).

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// Anchors over feature maps, as torchvision generates them.
#[derive(Debug)]
pub struct AnchorGenerator {
    /// Anchor sizes (square root of the area) per feature map.
    pub sizes: Vec<Vec<f64>>,
    /// Aspect ratios (height / width) per feature map.
    pub aspect_ratios: Vec<Vec<f64>>,
    /// `(A, 4)` per feature map: the anchors around the origin, rounded (float32, as torchvision
    /// computes them).
    cell_anchors: Vec<Tensor>,
}

impl AnchorGenerator {
    /// One `sizes[i]` × `aspect_ratios[i]` set per feature map.
    pub fn new(sizes: Vec<Vec<f64>>, aspect_ratios: Vec<Vec<f64>>) -> Result<Self> {
        if sizes.len() != aspect_ratios.len() || sizes.is_empty() {
            return Err(Error::Invalid(format!(
                "anchor generator: {} size sets for {} aspect-ratio sets (one of each per feature \
                 map expected)",
                sizes.len(),
                aspect_ratios.len()
            )));
        }
        let cell_anchors = sizes
            .iter()
            .zip(&aspect_ratios)
            .map(|(s, r)| cell_anchors(s, r))
            .collect();
        Ok(AnchorGenerator {
            sizes,
            aspect_ratios,
            cell_anchors,
        })
    }

    /// Faster R-CNN's with FPN: sizes 32, 64, 128, 256, 512 (one per level), ratios 0.5, 1, 2.
    pub fn fpn() -> Self {
        let sizes = [32.0, 64.0, 128.0, 256.0, 512.0].map(|s| vec![s]).to_vec();
        Self::new(sizes, vec![vec![0.5, 1.0, 2.0]; 5]).expect("five sizes, five ratio sets")
    }

    /// Anchors per location of each feature map.
    pub fn num_anchors_per_location(&self) -> Vec<i64> {
        self.sizes
            .iter()
            .zip(&self.aspect_ratios)
            .map(|(s, r)| (s.len() * r.len()) as i64)
            .collect()
    }

    /// The anchors `(Σ H·W·A, 4)` of one image of `image_size` (the padded batch's `(h, w)`) over
    /// feature maps of `grid_sizes`, level after level, row-major cells, `A` anchors per cell.
    pub fn anchors(
        &self,
        image_size: (i64, i64),
        grid_sizes: &[(i64, i64)],
        kind: Kind,
        device: Device,
    ) -> Result<Tensor> {
        if grid_sizes.len() != self.cell_anchors.len() {
            return Err(Error::Invalid(format!(
                "anchor generator: {} feature maps for {} anchor sets",
                grid_sizes.len(),
                self.cell_anchors.len()
            )));
        }
        let mut all = Vec::with_capacity(grid_sizes.len());
        for (&(gh, gw), base) in grid_sizes.iter().zip(&self.cell_anchors) {
            if gh <= 0 || gw <= 0 {
                return Err(Error::Invalid(format!(
                    "anchor generator: empty feature map {gh}×{gw}"
                )));
            }
            let (sh, sw) = (image_size.0 / gh, image_size.1 / gw);
            let xs = Tensor::arange(gw, (Kind::Int, device)) * sw;
            let ys = Tensor::arange(gh, (Kind::Int, device)) * sh;
            let grid = Tensor::meshgrid_indexing(&[&ys, &xs], "ij");
            let (sy, sx) = (grid[0].reshape([-1]), grid[1].reshape([-1]));
            let shifts = Tensor::stack(&[&sx, &sy, &sx, &sy], 1);
            let base = base.to_kind(kind).to_device(device);
            all.push((shifts.view([-1, 1, 4]) + base.view([1, -1, 4])).reshape([-1, 4]));
        }
        Ok(Tensor::cat(&all, 0))
    }
}

/// torchvision's `generate_anchors`: `(-w, -h, w, h) / 2` for every ratio × size, rounded.
fn cell_anchors(sizes: &[f64], ratios: &[f64]) -> Tensor {
    let f32s = |v: &[f64]| Tensor::from_slice(&v.iter().map(|&x| x as f32).collect::<Vec<_>>());
    let (scales, ratios) = (f32s(sizes), f32s(ratios));
    let h_ratios = ratios.sqrt();
    let w_ratios = h_ratios.reciprocal();
    let ws = (w_ratios.unsqueeze(1) * scales.unsqueeze(0)).view([-1]);
    let hs = (h_ratios.unsqueeze(1) * scales.unsqueeze(0)).view([-1]);
    (Tensor::stack(&[-&ws, -&hs, ws, hs], 1) / 2.0).round()
}
