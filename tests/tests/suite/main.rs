//! The parity and format tests in one binary (one link of libtorch and OpenCV instead of one per
//! file): checkpoints, backbones, data, metrics, optimisers and the task models against PyTorch,
//! torchvision and scikit-learn references computed by the tests themselves.

mod backbone_parity;
mod box_ops;
mod bytetrack;
mod checkpoint_formats;
mod cli;
mod data_decode_transforms;
mod data_formats;
mod data_loader;
mod detect_checkpoint;
mod detect_reference;
mod detection_parity;
mod dinov2;
mod distributed;
mod faster_rcnn;
mod fcn_lraspp;
mod fcos;
mod fpn;
mod hub;
mod metrics_reference;
mod onnx_export;
mod optim_and_freeze;
mod optim_lbfgs;
mod predict_sources;
mod retinanet;
mod roi_align;
mod segment_reference;
mod ssd;
mod style_reference;
mod timm_hub;
mod video;
mod yolo_ultralytics;
mod zoo_finetune;
mod zoo_parity;
