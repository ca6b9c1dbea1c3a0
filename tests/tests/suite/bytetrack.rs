//! detect's ByteTrack against Ultralytics' own `BYTETracker` (`reference/bytetrack.py`, with
//! `lap`): the same synthetic detections — moving boxes with jitter, a crossing, an occlusion
//! bridged by low-score boxes, an object leaving and one entering, low-score clutter — fed
//! frame by frame give the same confirmed tracks: the same identities on the same detections,
//! the same Kalman boxes (within 1e-3 px) and scores. BoT-SORT likewise against Ultralytics'
//! `BOTSORT` with its `botsort.yaml`, on the scene filmed by a panning camera, whose motion both
//! estimate from the frames (sparse optical flow).

use std::path::Path;

use ferrovis_data::decode::read_rgb;
use ferrovis_detect::track::{ByteTracker, Detection, TrackerConfig};
use ferrovis_tests::run_reference;

#[test]
fn bytetrack_follows_ultralytics_frame_by_frame() {
    // The scripted scene, then a crowd of ten boxes bouncing about with missed detections.
    for (scene, min_boxes) in [("scene", 200), ("crowd", 600)] {
        follow(scene, min_boxes);
    }
}

#[test]
fn bot_sort_follows_ultralytics_through_a_panning_camera() {
    follow("pan", 200);
}

fn follow(scene: &str, min_boxes: usize) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tracks.json");
    let frames_dir = dir.path().join("frames");
    std::fs::create_dir_all(&frames_dir).unwrap();
    run_reference(
        "bytetrack.py",
        &[file.as_os_str(), scene.as_ref(), frames_dir.as_os_str()],
    );
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(&file)).unwrap()).unwrap();
    // Ultralytics' own tracker file (JSON is YAML) gives our defaults.
    let config = TrackerConfig::from_yaml(&reference["settings"].to_string()).unwrap();
    let bot = scene == "pan";
    let (expected, name) = if bot {
        (TrackerConfig::bot_sort(), "botsort.yaml")
    } else {
        (TrackerConfig::default(), "bytetrack.yaml")
    };
    assert_eq!(config, expected, "{name}'s settings");
    let mut tracker = if bot {
        ByteTracker::bot_sort(config)
    } else {
        ByteTracker::new(config)
    };
    // The same BoT-SORT with the camera taken as still: it must part from the reference, or the
    // comparison would not show the motion compensation at work.
    let mut still = ByteTracker::bot_sort_still(config);
    let mut still_apart = 0f32;
    let mut worst = 0f64;
    // Within a thousandth of a pixel, the motion estimate too, though it goes through two OpenCV
    // builds (Debian's 4.6 here, the wheel's in the reference).
    let tolerance = 1e-3;
    let (mut compared, mut ids) = (0, std::collections::BTreeSet::new());
    for (f, frame) in reference["frames"].as_array().unwrap().iter().enumerate() {
        let detections: Vec<Detection> = frame["detections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let v: Vec<f64> = serde_json::from_value(r.clone()).unwrap();
                Detection {
                    xyxy: [v[0] as f32, v[1] as f32, v[2] as f32, v[3] as f32],
                    score: v[4] as f32,
                    class: v[5] as f32,
                }
            })
            .collect();
        let image = bot.then(|| read_rgb(&frames_dir.join(format!("frame_{f:03}.png"))).unwrap());
        let mut ours = tracker.update_with_frame(&detections, image.as_ref());
        if bot {
            let mut s = still.update(&detections);
            s.sort_by_key(|t| t.track_id);
            let mut o = ours.clone();
            o.sort_by_key(|t| t.track_id);
            if s.len() != o.len() {
                still_apart = f32::INFINITY;
            }
            for (a, b) in s.iter().zip(&o) {
                for k in 0..4 {
                    still_apart = still_apart.max((a.xyxy[k] - b.xyxy[k]).abs());
                }
            }
        }
        let mut theirs: Vec<Vec<f64>> = serde_json::from_value(frame["tracks"].clone()).unwrap();
        ours.sort_by_key(|t| t.track_id);
        theirs.sort_by(|a, b| a[4].total_cmp(&b[4]));
        let ours_ids: Vec<u64> = ours.iter().map(|t| t.track_id).collect();
        let theirs_ids: Vec<u64> = theirs.iter().map(|t| t[4] as u64).collect();
        assert_eq!(ours_ids, theirs_ids, "{scene} frame {}: identities", f + 1);
        for (o, t) in ours.iter().zip(&theirs) {
            assert_eq!(
                o.detection,
                t[7] as usize,
                "frame {}: track {}",
                f + 1,
                o.track_id
            );
            // serde_json's default float parsing may be one ulp off the JSON's digits.
            assert!(
                (o.score as f64 - t[5]).abs() < 1e-6,
                "frame {}: score",
                f + 1
            );
            assert_eq!(o.class as f64, t[6], "frame {}: class", f + 1);
            for k in 0..4 {
                let d = (o.xyxy[k] as f64 - t[k]).abs();
                worst = worst.max(d);
                assert!(
                    d < tolerance,
                    "frame {}: track {} box {:?} vs {:?}",
                    f + 1,
                    o.track_id,
                    o.xyxy,
                    &t[..4]
                );
            }
            compared += 1;
            ids.insert(o.track_id);
        }
    }
    println!(
        "{scene}: {compared} tracked boxes over {} frames equal Ultralytics'; {} identities",
        reference["frames"].as_array().unwrap().len(),
        ids.len()
    );
    assert!(
        compared > min_boxes && ids.len() >= 5,
        "{compared} boxes, {ids:?}"
    );
    if bot {
        println!(
            "{scene}: largest box difference to Ultralytics {worst:.2e} px; without motion \
             compensation {still_apart:.2} px"
        );
        assert!(
            f64::from(still_apart) > 100.0 * tolerance,
            "without motion compensation the tracks would be the same: the pan tests nothing"
        );
    }
}

/// `detect track`'s outputs for any detector (`write_predictions` with a tracker): frames in
/// order, two objects moving across them; each keeps its identity, drawn and written in the
/// labels, the JSON and `mot.txt`; the tracker file is read as Ultralytics writes it.
#[test]
fn track_outputs_carry_stable_identities() {
    use ferrovis_data::image::RgbImage;
    use ferrovis_detect::output::{write_predictions, ImagePrediction, PixelDetection};
    let tmp = tempfile::tempdir().unwrap();
    let frames = tmp.path().join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    for f in 0..10 {
        let img = RgbImage::filled(160, 120, [30, 30, 30]);
        ferrovis_data::decode::write_rgb(&frames.join(format!("{f:04}.png")), &img).unwrap();
    }
    let yaml = tmp.path().join("mytracker.yaml");
    std::fs::write(
        &yaml,
        "tracker_type: bytetrack\ntrack_high_thresh: 0.3\ntrack_low_thresh: 0.1\n\
         new_track_thresh: 0.4\ntrack_buffer: 30\nmatch_thresh: 0.8\nfuse_score: True\n",
    )
    .unwrap();
    let config = TrackerConfig::load(yaml.to_str().unwrap()).unwrap();
    assert_eq!(config.new_track_thresh, 0.4);
    let detect_one = |file: &Path, img: &RgbImage| {
        let f: f32 = file.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        // A square moving right, a rectangle moving down (listed in either order).
        let a = [10.0 + 6.0 * f, 20.0, 30.0 + 6.0 * f, 40.0];
        let b = [100.0, 5.0 + 5.0 * f, 130.0, 20.0 + 5.0 * f];
        let boxes = if (f as usize).is_multiple_of(2) {
            [a, b]
        } else {
            [b, a]
        };
        Ok(ImagePrediction {
            image: file.to_path_buf(),
            frame: None,
            size: (img.width, img.height),
            detections: boxes
                .iter()
                .enumerate()
                .map(|(i, &xyxy)| PixelDetection {
                    class: 0,
                    name: "thing".into(),
                    confidence: 0.9 - 0.1 * i as f32,
                    xyxy,
                    track_id: None,
                })
                .collect(),
        })
    };
    let out = tmp.path().join("track");
    let preds = write_predictions(
        &[frames],
        &out,
        &Default::default(),
        Some(&config),
        detect_one,
    )
    .unwrap();
    assert_eq!(preds.len(), 10);
    for (f, p) in preds.iter().enumerate() {
        let ids: Vec<Option<u64>> = p.detections.iter().map(|d| d.track_id).collect();
        assert_eq!(ids.len(), 2, "frame {f}: {ids:?}");
        // The right-moving square (20 px wide; the rectangle is 30) is always track 1.
        let square = p
            .detections
            .iter()
            .find(|d| d.xyxy[2] - d.xyxy[0] < 25.0)
            .unwrap();
        assert_eq!(square.track_id, Some(1), "frame {f}");
    }
    let mot = std::fs::read_to_string(out.join("mot.txt")).unwrap();
    let lines: Vec<&str> = mot.lines().collect();
    assert_eq!(lines.len(), 20);
    assert!(
        lines[0].starts_with("1,") && lines[0].ends_with(",-1,-1,-1"),
        "{}",
        lines[0]
    );
    let label = std::fs::read_to_string(out.join("labels/0005.txt")).unwrap();
    assert!(label.lines().all(|l| l.split(' ').count() == 7), "{label}");
    let json = std::fs::read_to_string(out.join("predictions.json")).unwrap();
    assert!(json.contains("\"track_id\": 2"), "{json}");
}
