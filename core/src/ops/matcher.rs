//! torchvision's `Matcher` and `SSDMatcher`: each prediction (anchor, proposal, default box) gets
//! the ground truth it overlaps most, or a negative label when the overlap is too low.

use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// The label of a prediction whose best quality is below the low threshold (background).
pub const BELOW_LOW_THRESHOLD: i64 = -1;
/// The label of a prediction between the thresholds (ignored by the losses).
pub const BETWEEN_THRESHOLDS: i64 = -2;

/// Matches predictions to ground truth by a quality matrix (IoU).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Matcher {
    /// A prediction whose best quality reaches this is matched.
    pub high_threshold: f64,
    /// Below this it is background ([`BELOW_LOW_THRESHOLD`]); between the two,
    /// [`BETWEEN_THRESHOLDS`].
    pub low_threshold: f64,
    /// Also match, for each ground truth, the predictions of highest quality with it (ties
    /// included), whatever that quality (Faster R-CNN's RPN).
    pub allow_low_quality_matches: bool,
}

impl Matcher {
    /// A matcher; `low_threshold` must not exceed `high_threshold`.
    pub fn new(
        high_threshold: f64,
        low_threshold: f64,
        allow_low_quality_matches: bool,
    ) -> Result<Self> {
        if low_threshold > high_threshold {
            return Err(Error::Invalid(format!(
                "matcher: low_threshold {low_threshold} is above high_threshold {high_threshold}"
            )));
        }
        Ok(Matcher {
            high_threshold,
            low_threshold,
            allow_low_quality_matches,
        })
    }

    /// For a quality matrix `(M ground truths, N predictions)`, each prediction's ground-truth
    /// index or a negative label, `(N,)` Int64.
    pub fn apply(&self, quality: &Tensor) -> Result<Tensor> {
        check_quality(quality)?;
        let (matched_vals, matches) = quality.max_dim(0, false);
        let all_matches = self.allow_low_quality_matches.then(|| matches.copy());
        let below = matched_vals.lt(self.low_threshold);
        let between = matched_vals
            .ge(self.low_threshold)
            .logical_and(&matched_vals.lt(self.high_threshold));
        let mut matches = matches
            .masked_fill(&below, BELOW_LOW_THRESHOLD)
            .masked_fill(&between, BETWEEN_THRESHOLDS);
        if let Some(all) = all_matches {
            // For each ground truth, every prediction of its highest quality (ties included)
            // takes back the match it had before thresholding.
            let (highest, _) = quality.max_dim(1, true);
            let preds = quality.eq_tensor(&highest).nonzero().select(1, 1);
            let _ = matches.index_put_(&[Some(&preds)], &all.index_select(0, &preds), false);
        }
        Ok(matches)
    }
}

/// SSD's matcher: [`Matcher`] with one threshold and no low-quality matches, then each ground
/// truth forced onto the prediction it overlaps most.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SsdMatcher {
    /// Predictions reaching this quality are matched (0.5 in torchvision's SSD).
    pub threshold: f64,
}

impl SsdMatcher {
    /// Each prediction's ground-truth index or [`BELOW_LOW_THRESHOLD`], `(N,)` Int64.
    pub fn apply(&self, quality: &Tensor) -> Result<Tensor> {
        let mut matches = Matcher::new(self.threshold, self.threshold, false)?.apply(quality)?;
        let (_, best_pred) = quality.max_dim(1, false);
        let gts = Tensor::arange(best_pred.size()[0], (Kind::Int64, quality.device()));
        let _ = matches.index_put_(&[Some(&best_pred)], &gts, false);
        Ok(matches)
    }
}

/// What [`match_by_iou`] asks of a matcher: [`Matcher`] and [`SsdMatcher`] alike.
pub trait QualityMatcher {
    /// For a quality matrix `(M ground truths, N predictions)`, each prediction's ground-truth
    /// index or a negative label, `(N,)` Int64.
    fn match_quality(&self, quality: &Tensor) -> Result<Tensor>;
}

impl QualityMatcher for Matcher {
    fn match_quality(&self, quality: &Tensor) -> Result<Tensor> {
        self.apply(quality)
    }
}

impl QualityMatcher for SsdMatcher {
    fn match_quality(&self, quality: &Tensor) -> Result<Tensor> {
        self.apply(quality)
    }
}

/// Per image, each of its `predictions` (`(N, 4)` boxes: anchors, default boxes) matched by
/// `matcher` on their IoU with the image's `ground_truth` boxes (`(M, 4)`); an image without
/// boxes has every prediction [`BELOW_LOW_THRESHOLD`] (background), as torchvision's
/// single-stage detectors match.
pub fn match_by_iou<'a>(
    matcher: &impl QualityMatcher,
    predictions: &[Tensor],
    ground_truth: impl IntoIterator<Item = &'a Tensor>,
) -> Result<Vec<Tensor>> {
    predictions
        .iter()
        .zip(ground_truth)
        .map(|(p, gt)| {
            if gt.numel() == 0 {
                return Ok(Tensor::full(
                    [p.size()[0]],
                    BELOW_LOW_THRESHOLD,
                    (Kind::Int64, p.device()),
                ));
            }
            matcher.match_quality(&crate::ops::detection::box_iou(gt, p)?)
        })
        .collect()
}

fn check_quality(q: &Tensor) -> Result<()> {
    let s = q.size();
    if s.len() != 2 {
        return Err(Error::Invalid(format!(
            "match_quality_matrix: expected shape (ground truths, predictions), got {s:?}"
        )));
    }
    if s[0] == 0 {
        return Err(Error::Invalid(
            "match_quality_matrix: no ground-truth boxes (an image without boxes needs no matching)"
                .into(),
        ));
    }
    if s[1] == 0 {
        return Err(Error::Invalid(
            "match_quality_matrix: no predictions (anchors or proposals) to match".into(),
        ));
    }
    Ok(())
}
