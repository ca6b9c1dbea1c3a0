//! The YOLO family with Ultralytics' recipe, as Ultralytics lays it out (`nn/tasks.py` for the
//! model, `models/yolo/detect/{train,val,predict}.py` for the workflow, `utils/loss.py`,
//! `utils/tal.py`): one file per architecture, the training loss and its assigner beside them,
//! and the train, val, predict and export commands.
//!
//! | file | what it holds |
//! |---|---|
//! | [`model`] | versions and scales, and [`Yolo`](model::Yolo), the model the workflows take |
//! | [`yolov8`] | YOLOv8 n/s/m/l/x: the layer table with Ultralytics' state-dict names |
//! | [`yolo11`] | YOLO11 n/s/m/l/x: C3k2, C2PSA and its attention, the same way |
//! | [`yolo26`] | YOLO26 n/s/m/l/x: YOLO11's table with an end-to-end (NMS-free) head |
//! | [`blocks`] | the blocks the versions share: Conv, Bottleneck, C2f, C3/C3k, C3k2, SPPF |
//! | [`psa`] | self-attention blocks: Attention, PSABlock, C2PSA |
//! | [`head`] | the Detect head (DFL box branch, class branch) and its decoding |
//! | [`weights`] | Ultralytics `.pt` and ferrovis `.safetensors` checkpoints: version, scale, classes |
//! | [`loss`] | the detection loss (CIoU box, BCE class, distribution focal loss) |
//! | [`assigner`] | the task-aligned assigner |
//! | [`boxes`] | box coding, CIoU, letterbox mapping |
//! | [`postprocess`] | Ultralytics' NMS |
//! | [`train`] | Ultralytics' recipe on the core engine |
//! | [`val`] | validation: Ultralytics' mAP, confusion matrix |
//! | [`predict`] | detections in original pixels |
//! | [`export`] | TorchScript |

pub mod assigner;
pub mod blocks;
pub mod boxes;
pub mod export;
pub mod head;
pub mod loss;
pub mod model;
pub mod postprocess;
pub mod predict;
pub mod psa;
pub mod train;
pub mod val;
pub mod weights;
pub mod yolo11;
pub mod yolo26;
pub mod yolov8;
