//! The `detect` task: object detection by family. YOLOv8 and YOLO11 with Ultralytics' recipe, and
//! torchvision's Faster R-CNN, SSD and RetinaNet with torchvision's recipe: fine-tune, validate,
//! predict, with the same commands, settings (Ultralytics' names, `arch=` choosing the family)
//! and run folders for both. `main.rs` only runs [`cli::run`]; the commands live here so other programs
//! can call them.
//!
//! Where is …
//!
//! | what | file |
//! |---|---|
//! | the command line, one function per command | `cli.rs` |
//! | every setting, the family `arch=` names | `config.rs` ([`config::Family`]) |
//! | what `--weights` holds (run folder or checkpoint, its architecture) | `source.rs` |
//! | the dataset check and loader settings every family shares | `data.rs` |
//! | the prediction files and validation reports every family writes | `output.rs` |
//! | a run folder's record (`detect.json`) | `run.rs` |
//! | YOLOv8's / YOLO11's layer table | `yolo/yolov8.rs`, `yolo/yolo11.rs` |
//! | the blocks and the Detect head they share; a model of either version | `yolo/{blocks,head,model}.rs` |
//! | YOLO's loss / assigner / NMS | `yolo/loss.rs`, `yolo/assigner.rs`, `yolo/postprocess.rs` |
//! | YOLO's training loop / validation / prediction / export | `yolo/{train,val,predict,export}.rs` |
//! | Faster R-CNN / its RPN / its RoI heads / the input transform | `torchvision/{faster_rcnn,rpn,roi_heads,transform}.rs` |
//! | SSD300 and SSDlite, their heads and backbones | `torchvision/ssd/` |
//! | RetinaNet v1 and v2, its head, loss and post-processing | `torchvision/retinanet.rs` |
//! | what every torchvision detector implements | `torchvision/detector.rs` ([`torchvision::Detector`]) |
//! | a torchvision detector by name, with its weights | `torchvision/model.rs` |
//! | the torchvision detectors' training loop, val and predict | `torchvision/train.rs` |
//! | anchors, SSD's default boxes, RoIAlign, box coding, focal and GIoU losses | `ferrovis_core::ops` (core) |
//! | the flags every binary shares (`--device`, `--set`, …) | `ferrovis_app::args` |
//! | the synthetic transfer-against-scratch demo | `demo.rs` |

pub mod cli;
pub mod config;
pub mod data;
pub mod demo;
pub mod output;
pub mod run;
pub mod source;
pub mod torchvision;
pub mod track;
mod weights_arch;
pub mod yolo;

pub use cli::{run, Cli};
