//! The real-data checks against `../shared` (`make validate`): every test is `#[ignore]`d so that
//! `make test` stays self-contained, and they run one at a time (`--test-threads 1`).

mod validate_classify;
mod validate_data;
mod validate_detect;
mod validate_faster_rcnn;
mod validate_imagenet;
mod validate_retinanet;
mod validate_segment;
mod validate_ssd;
mod validate_style;
mod validate_weights;
mod validate_zoo;
