//! torchvision's detectors and their recipe, as `torchvision.models.detection` and its detection
//! references (`references/detection` in pytorch/vision) lay them out: one file per model, the
//! parts the models share beside them, and the training workflow on the core engine with the same
//! data sets, run folders, `results.csv` columns and outputs as YOLO.
//!
//! | file | torchvision | what it holds |
//! |---|---|---|
//! | [`faster_rcnn`] | `faster_rcnn.py` | Faster R-CNN on ResNet-50, MobileNetV3 or any core backbone |
//! | [`ssd`] | `ssd.py`, `ssdlite.py` | SSD300 on VGG16, SSDlite320 on MobileNetV3/V2 |
//! | [`fcos`] | `fcos.py` | FCOS on ResNet-50 with FPN (P3–P7), anchor-free |
//! | [`retinanet`] | `retinanet.py` | RetinaNet v1 and v2 on ResNet-50 with FPN P3–P7 |
//! | [`transform`] | `transform.py` | normalise, resize, batch; boxes mapped back |
//! | [`rpn`] | `rpn.py` | the region proposal network |
//! | [`roi_heads`] | `roi_heads.py` | box head, predictor, sampling, the box losses |
//! | [`targets`] | the dicts of `forward` | per-image ground truth, detections and losses |
//! | [`detector`] | `GeneralizedRCNN` / `SSD` / `FCOS` / `RetinaNet` `forward` | the [`Detector`] trait they implement |
//! | [`model`] | `get_model(name)` + `load_state_dict` | a detector by name with its weights ([`Model`]) |
//! | [`data`] | `references/detection/presets.py` | images at their own size, flipped at random |
//! | [`train`] | `references/detection/train.py` | training, validation, `val`, `predict` |
//!
//! The anchors, SSD's default boxes, box coding, matching, sampling, RoIAlign and the focal and
//! GIoU losses are core operators (`ferrovis_core::ops`).

pub mod data;
pub mod detector;
pub mod faster_rcnn;
pub mod fcos;
pub mod model;
pub mod retinanet;
pub mod roi_heads;
pub mod rpn;
pub mod ssd;
pub mod targets;
pub mod train;
pub mod transform;

pub use detector::Detector;
pub use model::Model;
