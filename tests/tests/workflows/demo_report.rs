//! The demos' shared report, from real (tiny) demo runs: with no pretrained weights at hand the
//! classify demo pretrains its own source model, the segment demo takes it as its U-Net's encoder
//! (or, alone, pretrains a U-Net), both transfer and train from scratch, record their rows in one
//! folder, and `report.html` links only pictures those runs wrote. A second classify demo reuses
//! the cached source model.

use ferrovis_app::demo_report;

use crate::serial;

#[test]
fn demos_without_weights_pretrain_transfer_and_report_every_picture() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();

    let rows =
        ferrovis_classify::demo::run_with(root, None, &ferrovis_classify::demo::Plan::smoke())
            .unwrap();
    assert_eq!(rows.len(), 2, "feature extraction and fine-tuning");
    for r in &rows {
        let (t, s) = (r.transferred.unwrap(), r.scratch.unwrap());
        assert!(
            (0.0..=1.0).contains(&t) && (0.0..=1.0).contains(&s),
            "{r:?}"
        );
        assert!(r.source.contains("pretrained here"), "{}", r.source);
    }
    let source = root.join("classify/source-model/resnet18/weights/best.safetensors");
    let trained_at = std::fs::metadata(&source).unwrap().modified().unwrap();

    let row = ferrovis_segment::demo::run_with(root, None, &ferrovis_segment::demo::Plan::smoke())
        .unwrap();
    assert!(
        row.source.contains("classify demo's ResNet18"),
        "{}",
        row.source
    );

    // Alone, the segment demo pretrains its own U-Net.
    let alone = tempfile::tempdir().unwrap();
    let row = ferrovis_segment::demo::run_with(
        alone.path(),
        None,
        &ferrovis_segment::demo::Plan::smoke(),
    )
    .unwrap();
    assert!(row.source.contains("masks"), "{}", row.source);
    assert!(alone
        .path()
        .join("segment/source-model/unet-resnet18/weights/best.safetensors")
        .is_file());

    // Again: the source model is reused, not retrained, and the task's rows are replaced.
    ferrovis_classify::demo::run_with(root, None, &ferrovis_classify::demo::Plan::smoke()).unwrap();
    assert_eq!(
        std::fs::metadata(&source).unwrap().modified().unwrap(),
        trained_at,
        "the cached source model was trained again"
    );

    let all = demo_report::load(root).unwrap();
    let tasks: Vec<&str> = all.iter().map(|r| r.task.as_str()).collect();
    assert_eq!(tasks, ["classify", "classify", "segment"]);
    let pictures: usize = all.iter().map(|r| r.pictures.len()).sum();
    // classify: a confusion matrix and training curves per compared run; segment: overlays of
    // two validation images per compared run.
    assert_eq!(pictures, 4 + 4, "{all:#?}");
    assert_eq!(
        demo_report::missing_links(root).unwrap(),
        Vec::<std::path::PathBuf>::new()
    );
    for p in all.iter().flat_map(|r| &r.pictures) {
        let bytes = std::fs::read(root.join(&p.path)).unwrap();
        let png = bytes.starts_with(b"\x89PNG");
        let jpeg = bytes.starts_with(&[0xff, 0xd8]);
        assert!(png || jpeg, "{} is not a picture", p.path);
    }
    let page = std::fs::read_to_string(demo_report::report_path(root)).unwrap();
    assert!(page.contains("<td>classify</td>") && page.contains("<td>segment</td>"));
}
