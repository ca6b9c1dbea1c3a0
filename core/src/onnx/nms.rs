//! Non-maximum suppression inside the graph: a detector's `(N, 4 + classes, anchors)` output
//! (box centre and size, then class probabilities) becomes `(N, max_det, 6)` rows `x1, y1, x2,
//! y2, score, class`, as Ultralytics' `nms=True` export writes them.
//!
//! Which boxes survive depends on the data, which a trace cannot record, so these nodes are
//! written here rather than traced: each anchor keeps its best class (one label per box, as
//! prediction does), boxes scoring above `conf` go through ONNX's `NonMaxSuppression` class by
//! class, and each image's `max_det` best survivors are its rows, by decreasing score, the rest
//! zeros. Every size is read at run time, so a free batch, height and width stay free.

use tch::{Kind, Tensor};

use super::graph::{attr_int, attr_ints, attr_tensor, Builder};
use super::proto::AttributeProto;
use crate::Result;

const SCOPE: &str = "nms";

fn node(b: &mut Builder, op: &str, inputs: &[&str], attributes: Vec<AttributeProto>) -> String {
    b.node1(op, inputs, attributes, SCOPE)
}

/// The settings of the suppression written into the graph.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Nms {
    /// Minimum class probability (Ultralytics' export default: 0.25).
    pub conf: f32,
    /// IoU above which a lower-scored box of the same class is suppressed (0.7).
    pub iou: f32,
    /// Rows per image (300).
    pub max_det: i64,
}

impl Default for Nms {
    fn default() -> Self {
        Self {
            conf: 0.25,
            iou: 0.7,
            max_det: 300,
        }
    }
}

/// Appends the suppression to `decoded`, `(N, 4 + classes, anchors)`, and returns the rows'
/// name.
pub(crate) fn append(b: &mut Builder, decoded: &str, classes: i64, nms: &Nms) -> Result<String> {
    let rows = node(
        b,
        "Transpose",
        &[decoded],
        vec![attr_ints("perm", &[0, 2, 1])],
    ); // (N, A, 4+C)
    let split = b.ints(&[2, 2, classes]);
    let parts = b.node(
        "Split",
        &[&rows, &split],
        3,
        vec![attr_int("axis", 2)],
        SCOPE,
    );
    let (centre, size, probs) = (&parts[0], &parts[1], &parts[2]);
    // Corners from centre and size.
    let half = b.scalar(0.5, Kind::Float);
    let half_size = node(b, "Mul", &[size, &half], vec![]);
    let top_left = node(b, "Sub", &[centre, &half_size], vec![]);
    let bottom_right = node(b, "Add", &[centre, &half_size], vec![]);
    let corners = node(
        b,
        "Concat",
        &[&top_left, &bottom_right],
        vec![attr_int("axis", 2)],
    );
    // One label per anchor: its best class, whose probability alone enters the suppression.
    let axis = vec![attr_int("axis", 2), attr_int("keepdims", 1)];
    let best = b.ints(&[2]);
    let score = node(
        b,
        "ReduceMax",
        &[probs, &best],
        vec![attr_int("keepdims", 1)],
    );
    let label = node(b, "ArgMax", &[probs], axis);
    let label_float = node(b, "Cast", &[&label], vec![attr_int("to", 1)]);
    let class_ids = b.constant(
        "class_ids",
        Tensor::arange(classes, (Kind::Int64, tch::Device::Cpu)),
    );
    let is_best = node(b, "Equal", &[&label, &class_ids], vec![]); // (N, A, C)
    let zero = b.scalar(0.0, Kind::Float);
    let only_best = node(b, "Where", &[&is_best, probs, &zero], vec![]);
    let per_class = node(
        b,
        "Transpose",
        &[&only_best],
        vec![attr_ints("perm", &[0, 2, 1])],
    );
    let max_boxes = b.ints(&[nms.max_det]);
    let iou = b.constant("iou", Tensor::from_slice(&[nms.iou]));
    let conf = b.constant("conf", Tensor::from_slice(&[nms.conf]));
    let selected = node(
        b,
        "NonMaxSuppression",
        &[&corners, &per_class, &max_boxes, &iou, &conf],
        vec![attr_int("center_point_box", 0)],
    ); // (K, 3): image, class, anchor
       // The survivors' rows, (K, 6).
    let table = node(
        b,
        "Concat",
        &[&corners, &score, &label_float],
        vec![attr_int("axis", 2)],
    ); // (N, A, 6)
    let (c0, c1, c2, c3, one) = (
        b.ints(&[0]),
        b.ints(&[1]),
        b.ints(&[2]),
        b.ints(&[3]),
        b.ints(&[1]),
    );
    let image = node(b, "Slice", &[&selected, &c0, &c1, &one], vec![]); // (K, 1)
    let anchor = node(b, "Slice", &[&selected, &c2, &c3, &one], vec![]);
    let index = node(b, "Concat", &[&image, &anchor], vec![attr_int("axis", 1)]);
    let kept = node(b, "GatherND", &[&table, &index], vec![]); // (K, 6)
                                                               // Each image's best `max_det`: a score matrix (N, K) with -1 where a survivor is another
                                                               // image's, widened by `max_det` columns of -1 so that TopK always has enough.
    let shape = node(b, "Shape", &[&rows], vec![]);
    let n = node(b, "Slice", &[&shape, &c0, &c1], vec![]);
    let n_scalar = node(b, "Squeeze", &[&n], vec![]);
    let (start, step) = (b.scalar(0.0, Kind::Int64), b.scalar(1.0, Kind::Int64));
    let images = node(b, "Range", &[&start, &n_scalar, &step], vec![]);
    let images = node(b, "Unsqueeze", &[&images, &c1], vec![]); // (N, 1)
    let owner = node(b, "Transpose", &[&image], vec![attr_ints("perm", &[1, 0])]); // (1, K)
    let mine = node(b, "Equal", &[&images, &owner], vec![]);
    let (c4, c5) = (b.ints(&[4]), b.ints(&[5]));
    let kept_score = node(b, "Slice", &[&kept, &c4, &c5, &one], vec![]);
    let kept_score = node(
        b,
        "Transpose",
        &[&kept_score],
        vec![attr_ints("perm", &[1, 0])],
    );
    let none = b.scalar(-1.0, Kind::Float);
    let scores = node(b, "Where", &[&mine, &kept_score, &none], vec![]); // (N, K)
    let max_det = b.ints(&[nms.max_det]);
    let pad_shape = node(b, "Concat", &[&n, &max_det], vec![attr_int("axis", 0)]);
    let minus_one = Tensor::from_slice(&[-1.0f32]);
    let pad = node(
        b,
        "ConstantOfShape",
        &[&pad_shape],
        vec![attr_tensor("value", &minus_one)?],
    );
    let scores = node(b, "Concat", &[&scores, &pad], vec![attr_int("axis", 1)]);
    let top = b.node(
        "TopK",
        &[&scores, &max_det],
        2,
        vec![
            attr_int("axis", 1),
            attr_int("largest", 1),
            attr_int("sorted", 1),
        ],
        SCOPE,
    );
    let (top_scores, top_index) = (&top[0], &top[1]);
    // The padding columns point past the survivors, at rows of zeros.
    let zero_rows_shape = b.ints(&[nms.max_det, 6]);
    let zeros = Tensor::from_slice(&[0.0f32]);
    let zero_rows = node(
        b,
        "ConstantOfShape",
        &[&zero_rows_shape],
        vec![attr_tensor("value", &zeros)?],
    );
    let all_rows = node(b, "Concat", &[&kept, &zero_rows], vec![attr_int("axis", 0)]);
    let picked = node(
        b,
        "Gather",
        &[&all_rows, top_index],
        vec![attr_int("axis", 0)],
    ); // (N, M, 6)
    let valid = node(b, "GreaterOrEqual", &[top_scores, &zero], vec![]);
    let valid = node(b, "Cast", &[&valid], vec![attr_int("to", 1)]);
    let valid = node(b, "Unsqueeze", &[&valid, &c2], vec![]);
    Ok(node(b, "Mul", &[&picked, &valid], vec![]))
}
