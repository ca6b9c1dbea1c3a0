//! The YOLO family with Ultralytics' recipe, as Ultralytics lays it out (`nn/tasks.py` for the
//! model, `models/yolo/detect/{train,val,predict}.py` for the workflow, `utils/loss.py`,
//! `utils/tal.py`): one file per architecture, the training loss and its assigner beside them,
//! and the train, val, predict and export commands.
//!
//! | file | what it holds |
//! |---|---|
//! | [`yolov8`] | YOLOv8 n/s/m/l/x: the layer table with Ultralytics' state-dict names |
//! | [`weights`] | Ultralytics `.pt` and ferrovis `.safetensors` checkpoints, by scale |
//! | [`loss`] | the detection loss (CIoU box, BCE class, distribution focal loss) |
//! | [`assigner`] | the task-aligned assigner |
//! | [`boxes`] | box coding, CIoU, letterbox mapping |
//! | [`postprocess`] | Ultralytics' NMS |
//! | [`train`] | Ultralytics' recipe on the core engine |
//! | [`val`] | validation: Ultralytics' mAP, confusion matrix |
//! | [`predict`] | detections in original pixels |
//! | [`export`] | TorchScript |

pub mod assigner;
pub mod boxes;
pub mod export;
pub mod loss;
pub mod postprocess;
pub mod predict;
pub mod train;
pub mod val;
pub mod weights;
pub mod yolov8;
