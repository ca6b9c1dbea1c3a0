//! A k-nearest-neighbour classifier on frozen features: DINOv2's k-NN evaluation (Oquab et
//! al. 2023, after Wu et al. 2018), the transfer baseline that trains nothing.
//!
//! Features are L2-normalised, so the dot product is the cosine similarity. For a query, the k
//! most similar training features vote for their labels with weights `softmax(s / T)` over the k
//! similarities `s` (temperature `T`, DINOv2's 0.07); the summed votes are the class
//! probabilities. DINOv2's defaults: k = 20, T = 0.07, the class token as the feature.

use std::path::Path;

use tch::{Device, Kind, Tensor};

use crate::checkpoint::{self, StateDict};
use crate::error::{Error, Result};

/// DINOv2's number of neighbours.
pub const DEFAULT_K: i64 = 20;
/// DINOv2's temperature.
pub const DEFAULT_TEMPERATURE: f64 = 0.07;

/// Training features and labels, and the voting rule.
#[derive(Debug)]
pub struct KnnClassifier {
    /// `(N, D)`, each row of unit length.
    bank: Tensor,
    /// `(N,)` class indices.
    labels: Tensor,
    num_classes: i64,
    k: i64,
    temperature: f64,
}

impl KnnClassifier {
    /// A classifier over `features` `(N, D)` with `labels` `(N,)` in `0..num_classes`.
    pub fn new(
        features: &Tensor,
        labels: &Tensor,
        num_classes: i64,
        k: i64,
        temperature: f64,
    ) -> Result<Self> {
        let (fs, ls) = (features.size(), labels.size());
        if fs.len() != 2 || ls.len() != 1 || fs[0] != ls[0] || fs[0] == 0 {
            return Err(Error::Invalid(format!(
                "k-NN: expected (N, D) features and N labels with N > 0, got {fs:?} and {ls:?}"
            )));
        }
        if k < 1 || temperature.is_nan() || temperature <= 0.0 || num_classes < 1 {
            return Err(Error::Invalid(format!(
                "k-NN: k ({k}), the temperature ({temperature}) and the class count \
                 ({num_classes}) must be positive"
            )));
        }
        let labels = labels.to_kind(Kind::Int64);
        let (lo, hi) = (labels.min().int64_value(&[]), labels.max().int64_value(&[]));
        if lo < 0 || hi >= num_classes {
            return Err(Error::Invalid(format!(
                "k-NN: labels range over {lo}..={hi}, outside 0..{num_classes}"
            )));
        }
        Ok(KnnClassifier {
            bank: normalize(&features.to_kind(Kind::Float)),
            labels,
            num_classes,
            k,
            temperature,
        })
    }

    /// Class probabilities `(M, C)` of the queries `(M, D)`.
    pub fn probabilities(&self, query: &Tensor) -> Tensor {
        let q = normalize(&query.to_kind(Kind::Float).to_device(self.bank.device()));
        let k = self.k.min(self.bank.size()[0]);
        let sims = q.matmul(&self.bank.tr());
        let (top, idx) = sims.topk(k, 1, true, true);
        let weights = (top / self.temperature).softmax(1, Kind::Float);
        let votes = self
            .labels
            .index_select(0, &idx.flatten(0, 1))
            .view([-1, k]);
        let one_hot = votes.one_hot(self.num_classes).to_kind(Kind::Float);
        (one_hot * weights.unsqueeze(-1)).sum_dim_intlist(1, false, Kind::Float)
    }

    /// Number of classes voted for.
    pub fn num_classes(&self) -> i64 {
        self.num_classes
    }

    /// Width of the stored features.
    pub fn dim(&self) -> i64 {
        self.bank.size()[1]
    }

    /// Neighbours consulted per query.
    pub fn k(&self) -> i64 {
        self.k
    }

    /// Softmax temperature of the votes.
    pub fn temperature(&self) -> f64 {
        self.temperature
    }

    /// Number of stored training features.
    pub fn len(&self) -> i64 {
        self.bank.size()[0]
    }

    /// Whether no feature is stored (never, for a built classifier).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the features, labels and settings to a `.safetensors` file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let settings =
            Tensor::from_slice(&[self.k as f64, self.temperature, self.num_classes as f64]);
        let cpu = |t: &Tensor| t.to_device(Device::Cpu);
        let tensors = [
            ("features", cpu(&self.bank)),
            ("labels", cpu(&self.labels)),
            ("settings", settings),
        ];
        checkpoint::save_safetensors(path, tensors.iter().map(|(n, t)| (*n, t)))
    }

    /// Reads what [`KnnClassifier::save`] wrote, onto `device`.
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        let sd: StateDict = checkpoint::read(path)?;
        let get = |name: &str| {
            sd.get(name).ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: no `{name}` tensor (not a k-NN file)",
                    path.display()
                ))
            })
        };
        let settings: Vec<f64> = Vec::try_from(get("settings")?.to_kind(Kind::Double))
            .map_err(|e| Error::Invalid(format!("{}: settings: {e}", path.display())))?;
        let [k, t, c] = settings[..] else {
            return Err(Error::Invalid(format!(
                "{}: `settings` holds {} numbers, not k, temperature and class count",
                path.display(),
                settings.len()
            )));
        };
        Self::new(
            &get("features")?.to_device(device),
            &get("labels")?.to_device(device),
            c as i64,
            k as i64,
            t,
        )
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
    }
}

/// Rows scaled to unit length (`F.normalize(x, dim=1)`: eps 1e-12).
fn normalize(x: &Tensor) -> Tensor {
    let norm = x
        .norm_scalaropt_dim(2, [1i64].as_slice(), true)
        .clamp_min(1e-12);
    x / norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_checked_votes() {
        // Queries and features on the unit circle: the neighbours and weights are by hand.
        let f = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 1.0, -1.0, 0.0, 0.6, 0.8]).view([4, 2]);
        let labels = Tensor::from_slice(&[0i64, 1, 1, 0]);
        let knn = KnnClassifier::new(&f, &labels, 2, 2, 0.5).unwrap();
        // (2, 0) is (1, 0): nearest (1, 0) s=1 (class 0), then (0.6, 0.8) s=0.6 (class 0).
        let p = knn.probabilities(&Tensor::from_slice(&[2.0f32, 0.0]).view([1, 2]));
        let p: Vec<f32> = Vec::try_from(p.flatten(0, -1)).unwrap();
        assert!((p[0] - 1.0).abs() < 1e-6 && p[1].abs() < 1e-6, "{p:?}");
        // (0, 1): (0, 1) s=1 class 1, (0.6, 0.8) s=0.8 class 0: softmax([2, 1.6]).
        let p = knn.probabilities(&Tensor::from_slice(&[0.0f32, 1.0]).view([1, 2]));
        let p: Vec<f32> = Vec::try_from(p.flatten(0, -1)).unwrap();
        let w1 = 1.0 / (1.0 + (-0.4f32).exp());
        assert!(
            (p[1] - w1).abs() < 1e-6 && (p[0] - (1.0 - w1)).abs() < 1e-6,
            "{p:?}"
        );
    }

    #[test]
    fn bad_inputs_are_named() {
        let f = Tensor::zeros([3, 4], (Kind::Float, Device::Cpu));
        let err =
            KnnClassifier::new(&f, &Tensor::from_slice(&[0i64, 1, 5]), 2, 20, 0.07).unwrap_err();
        assert!(err.to_string().contains("outside 0..2"), "{err}");
        let err = KnnClassifier::new(&f, &Tensor::from_slice(&[0i64, 1]), 2, 20, 0.07).unwrap_err();
        assert!(err.to_string().contains("N labels"), "{err}");
    }
}
