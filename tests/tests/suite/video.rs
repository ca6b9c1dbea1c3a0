//! `detect predict` and `detect track` on video, on a clip the test writes with OpenCV
//! (`reference/video_clip.py`: four shapes with known trajectories — a crossing, an occlusion,
//! one leaving and coming back — 60 frames at 25 fps, as lossless PNGs, a lossless FFV1 `.mkv`,
//! an MJPG `.avi` and a copy of that cut short):
//! - the video's detections equal the PNG frames' detections frame by frame (same pixels, same
//!   numbers), `vid_stride=2` keeps frames 2, 4, …, and the annotated video has the input's frame
//!   count, rate and size;
//! - a recording cut short keeps the frames before the cut, names the file and the frame, and
//!   the exit status says so; a missing camera and an unreachable stream are named errors
//!   within seconds; an MJPEG-over-HTTP camera (`reference/mjpeg_server.py`) is predicted frame
//!   by frame and, when it drops and refuses to come back, reopened three times before the run
//!   stops with a message;
//! - `classify`, `segment` and `style predict` read the clip too (every sixth frame): a
//!   prediction per frame kept, and the annotated video with that many frames;
//! - ByteTrack and BoT-SORT, fed the clip's frames and its jittered ground truth (5 % missed,
//!   clutter), score IDF1 ≥ 0.9 with at most one identity switch (the crossing) by motmetrics.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use crate::cli::cli;
use ferrovis_data::decode::read_rgb;
use ferrovis_data::sources::Source;
use ferrovis_data::video::{VideoJob, VideoOptions};
use ferrovis_detect::track::{Detection, Tracker, TrackerConfig};
use ferrovis_tests::run_reference;
use serde_json::Value;

fn clip() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("video-clip");
        let _ = std::fs::remove_dir_all(&dir);
        run_reference("video_clip.py", &["write".as_ref(), dir.as_os_str()]);
        dir
    })
}

/// A YOLOv8n with two classes, from Ultralytics (as the YOLO parity tests make it).
fn weights() -> PathBuf {
    crate::yolo_ultralytics::model_case("yolov8n").join("yolov8n-2cls.pt")
}

fn predict(out: &Path, extra: &[&str]) -> (bool, String, String) {
    let w = weights();
    let mut args = vec![
        "detect",
        "predict",
        "--weights",
        w.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "conf=0.01",
        "imgsz=320",
    ];
    args.extend_from_slice(extra);
    cli(&args)
}

fn predictions(out: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(out.join("predictions.json")).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Frames, rate and size of a video, read back through the same decoder.
fn video_facts(path: &Path) -> (usize, f64, (usize, usize)) {
    let tmp = tempfile::tempdir().unwrap();
    let opts = VideoOptions {
        save_video: false,
        ..VideoOptions::default()
    };
    let mut job = VideoJob::start(&Source::Video(path.to_path_buf()), tmp.path(), &opts).unwrap();
    let info = *job.info();
    let mut n = 0;
    while job.next_frame().is_some() {
        n += 1;
    }
    let summary = job.finish().unwrap();
    assert_eq!(summary.problem, None, "{}", path.display());
    (n, info.fps, (info.width, info.height))
}

fn same_detections(a: &Value, b: &Value, what: &str) {
    let (a, b) = (a.as_array().unwrap(), b.as_array().unwrap());
    assert_eq!(a.len(), b.len(), "{what}: detection counts");
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x["class"], y["class"], "{what}");
        let close = |p: &Value, q: &Value| (p.as_f64().unwrap() - q.as_f64().unwrap()).abs() < 1e-4;
        assert!(
            close(&x["confidence"], &y["confidence"]),
            "{what}: {x} vs {y}"
        );
        for k in 0..4 {
            assert!(close(&x["xyxy"][k], &y["xyxy"][k]), "{what}: {x} vs {y}");
        }
    }
}

#[test]
fn a_video_predicts_as_its_frames_and_keeps_its_rate_and_size() {
    let clip = clip();
    let tmp = tempfile::tempdir().unwrap();
    let (by_video, by_frames, strided) = (
        tmp.path().join("video"),
        tmp.path().join("frames"),
        tmp.path().join("stride"),
    );
    let video = clip.join("clip.mkv");
    let (ok, _, err) = predict(&by_video, &[video.to_str().unwrap()]);
    assert!(ok, "{err}");
    let frames = clip.join("frames");
    let (ok, _, err) = predict(&by_frames, &[frames.to_str().unwrap()]);
    assert!(ok, "{err}");
    let (v, f) = (predictions(&by_video), predictions(&by_frames));
    assert_eq!((v.len(), f.len()), (60, 60));
    let mut boxes = 0;
    for (i, (pv, pf)) in v.iter().zip(&f).enumerate() {
        assert_eq!(pv["frame"].as_u64(), Some(i as u64 + 1));
        assert!(pv["image"].as_str().unwrap().ends_with("clip.mkv"));
        same_detections(
            &pv["detections"],
            &pf["detections"],
            &format!("frame {}", i + 1),
        );
        boxes += pv["detections"].as_array().unwrap().len();
    }
    println!("60 frames, {boxes} detections equal between the video and its frames");
    assert!(
        boxes >= 60,
        "the comparison has detections to compare: {boxes}"
    );
    assert!(by_video.join("labels/clip_60.txt").is_file());
    assert_eq!(
        video_facts(&by_video.join("clip.avi")),
        (60, 25.0, (320, 240)),
        "the annotated video: frames, fps, size"
    );

    // Every second frame: frames 2, 4, … of the source, numbered 1, 2, ….
    let (ok, _, err) = predict(&strided, &["vid_stride=2", video.to_str().unwrap()]);
    assert!(ok, "{err}");
    let s = predictions(&strided);
    assert_eq!(s.len(), 30);
    for (k, p) in s.iter().enumerate() {
        assert_eq!(p["frame"].as_u64(), Some(k as u64 + 1));
        same_detections(&p["detections"], &f[2 * k + 1]["detections"], "stride 2");
    }
    let (frames, fps, _) = video_facts(&strided.join("clip.avi"));
    assert_eq!(frames, 30);
    assert!(
        (fps - 12.5).abs() < 1e-3,
        "written at the kept frames' rate: {fps}"
    );
}

#[test]
fn a_cut_recording_keeps_its_frames_and_names_the_cut() {
    let clip = clip();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cut");
    let cut = clip.join("clip_cut.avi");
    let (ok, stdout, err) = predict(&out, &[cut.to_str().unwrap()]);
    assert!(
        !ok,
        "the exit status says the video stopped early:\n{stdout}\n{err}"
    );
    assert!(
        err.contains("clip_cut.avi: frame") && err.contains("of 60"),
        "names the file and the frame:\n{err}"
    );
    assert!(err.contains("1 video or stream stopped early"), "{err}");
    let kept = predictions(&out).len();
    assert!((10..60).contains(&kept), "{kept} frames kept");
    assert_eq!(video_facts(&out.join("clip_cut.avi")).0, kept);
    println!(
        "the cut clip kept {kept} of 60 frames: {}",
        err.lines().next().unwrap_or("")
    );
}

#[test]
fn a_missing_camera_and_an_unreachable_stream_are_named_within_seconds() {
    let tmp = tempfile::tempdir().unwrap();
    weights(); // made before the clock starts
    for (source, named) in [
        ("97", "camera 97: could not be opened"),
        (
            "rtsp://127.0.0.1:9/live",
            "rtsp://127.0.0.1:9/live: could not be opened",
        ),
    ] {
        let t = Instant::now();
        let (ok, _, err) = predict(&tmp.path().join("x"), &[source]);
        let seconds = t.elapsed().as_secs_f64();
        assert!(!ok);
        assert!(err.contains(named), "{source}:\n{err}");
        println!("{source}: refused in {seconds:.1} s");
        assert!(seconds < 30.0, "{source}: {seconds} s");
    }
}

/// Serves the clip's first `n` frames as an MJPEG stream that drops after them (and refuses
/// to come back); the server and its URL.
fn dropping_camera(dir: &Path, n: usize) -> (std::process::Child, String) {
    let port_file = dir.join("port");
    let server = std::process::Command::new(ferrovis_tests::python())
        .arg(ferrovis_tests::reference_script("mjpeg_server.py"))
        .arg(&port_file)
        .arg(clip().join("frames"))
        .arg(n.to_string())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !port_file.exists() {
        assert!(
            start.elapsed().as_secs() < 30,
            "the MJPEG server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let port = std::fs::read_to_string(&port_file).unwrap();
    (
        server,
        format!("http://127.0.0.1:{}/stream.mjpg", port.trim()),
    )
}

#[test]
fn a_dropping_stream_is_reopened_a_bounded_number_of_times() {
    weights();
    let tmp = tempfile::tempdir().unwrap();
    for buffer in [true, false] {
        let dir = tmp.path().join(format!("buffer-{buffer}"));
        std::fs::create_dir_all(&dir).unwrap();
        let (mut server, url) = dropping_camera(&dir, 40);
        let out = dir.join("out");
        let t = Instant::now();
        let setting = format!("stream_buffer={buffer}");
        let (ok, stdout, err) = predict(&out, &[setting.as_str(), url.as_str()]);
        let seconds = t.elapsed().as_secs_f64();
        let _ = server.kill();
        let _ = server.wait();
        assert!(
            !ok,
            "the exit status says the stream stopped:\n{stdout}\n{err}"
        );
        assert!(
            err.contains("the stream stopped sending frames; reopening it failed 3 times"),
            "{err}"
        );
        assert_eq!(err.matches("stream dropped; reopening").count(), 3, "{err}");
        let kept = predictions(&out).len();
        println!(
            "stream_buffer={buffer}: {kept} of 40 frames predicted, stopped in {seconds:.1} s"
        );
        if buffer {
            assert_eq!(kept, 40, "a buffered stream loses no frame");
        } else {
            assert!((1..=40).contains(&kept), "{kept}");
        }
        assert_eq!(video_facts(&out.join("stream.avi")).0, kept);
    }
}

#[test]
fn trackers_keep_identities_through_the_clip() {
    let clip = clip();
    let detections: Vec<Vec<Vec<f64>>> =
        serde_json::from_str(&std::fs::read_to_string(clip.join("detections.json")).unwrap())
            .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for (name, config) in [
        ("bytetrack", TrackerConfig::default()),
        ("botsort", TrackerConfig::bot_sort()),
    ] {
        let mut tracker = Tracker::new(&config);
        let mut mot = String::new();
        for (f, rows) in detections.iter().enumerate() {
            let image = read_rgb(&clip.join(format!("frames/frame_{f:03}.png"))).unwrap();
            let dets: Vec<Detection> = rows
                .iter()
                .map(|r| Detection {
                    xyxy: [r[0] as f32, r[1] as f32, r[2] as f32, r[3] as f32],
                    score: r[4] as f32,
                    class: r[5] as f32,
                })
                .collect();
            for t in tracker.update(&dets, &image) {
                let [x1, y1, x2, y2] = t.xyxy;
                mot += &format!(
                    "{},{},{x1},{y1},{},{},{},-1,-1,-1\n",
                    f + 1,
                    t.track_id,
                    x2 - x1,
                    y2 - y1,
                    t.score
                );
            }
        }
        let file = tmp.path().join(format!("{name}.txt"));
        std::fs::write(&file, mot).unwrap();
        let truth = clip.join("truth.json");
        let out = run_reference(
            "video_clip.py",
            &["score".as_ref(), truth.as_os_str(), file.as_os_str()],
        );
        let score: Value = serde_json::from_str(out.trim()).unwrap();
        let (idf1, switches) = (
            score["idf1"].as_f64().unwrap(),
            score["num_switches"].as_f64().unwrap(),
        );
        println!("{name}: IDF1 {idf1:.3}, {switches} identity switches (motmetrics)");
        assert!(idf1 >= 0.9, "{name}: IDF1 {idf1}");
        assert!(
            switches <= 1.0,
            "{name}: {switches} switches for one crossing"
        );
    }
}

#[test]
fn detect_track_writes_identities_on_the_video() {
    let clip = clip();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("track");
    let w = weights();
    let video = clip.join("clip.mkv");
    let (ok, stdout, err) = cli(&[
        "detect",
        "track",
        "--weights",
        w.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "imgsz=320",
        "conf=0.01",
        video.to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}\n{err}");
    assert_eq!(video_facts(&out.join("clip.avi")).0, 60);
    let p = predictions(&out);
    assert_eq!(p.len(), 60);
    let tracked: usize = p
        .iter()
        .map(|f| f["detections"].as_array().unwrap().len())
        .sum();
    let mot = std::fs::read_to_string(out.join("clip_mot.txt")).unwrap();
    assert_eq!(mot.lines().count(), tracked, "one MOT line per tracked box");
    for f in &p {
        for d in f["detections"].as_array().unwrap() {
            assert!(d["track_id"].as_u64().is_some(), "{d}");
        }
    }
    println!("detect track on the clip: {tracked} tracked boxes over 60 frames");
}

/// A video of every sixth frame of the clip: 10 frames of `size` at 25/6 frames/s.
fn assert_strided(path: &Path, size: (usize, usize)) {
    let (frames, fps, got) = video_facts(path);
    assert_eq!((frames, got), (10, size), "{}", path.display());
    assert!(
        (fps - 25.0 / 6.0).abs() < 1e-3,
        "{}: {fps} frames/s",
        path.display()
    );
}

#[test]
fn classify_segment_and_style_predict_a_video() {
    use crate::predict_sources::{fresh_classifier, fresh_style_net, fresh_unet};
    let clip = clip();
    let video = clip.join("clip.mkv");
    let tmp = tempfile::tempdir().unwrap();
    let path = |p: &Path| p.to_str().unwrap().to_string();

    // classify: a fresh ResNet-18 with three classes; JSON on stdout, the video in --out.
    let weights = fresh_classifier(tmp.path());
    let out = tmp.path().join("classify");
    let (ok, stdout, err) = cli(&[
        "classify",
        "predict",
        "--weights",
        &path(&weights),
        "--arch",
        "resnet18",
        "--json",
        "--out",
        &path(&out),
        "vid_stride=6",
        &path(&video),
    ]);
    assert!(ok, "{err}");
    let json: Value = serde_json::from_str(&stdout).unwrap();
    let frames: Vec<u64> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["frame"].as_u64().unwrap())
        .collect();
    assert_eq!(frames, (1..=10).collect::<Vec<u64>>());
    assert_eq!(json[0]["top"].as_array().unwrap().len(), 3);
    assert_strided(&out.join("clip.avi"), (320, 240));

    // segment: a fresh U-Net; a mask per frame and the overlay video.
    let weights = fresh_unet(tmp.path());
    let out = tmp.path().join("segment");
    let (ok, _, err) = cli(&[
        "segment",
        "predict",
        "--weights",
        &path(&weights),
        "--arch",
        "unet",
        "--encoder",
        "resnet18",
        "--classes",
        "2",
        "--out",
        &path(&out),
        "vid_stride=6",
        &path(&video),
    ]);
    assert!(ok, "{err}");
    assert_eq!(predictions(&out).len(), 10);
    assert!(out.join("clip_10.png").is_file());
    assert_strided(&out.join("clip.avi"), (320, 240));

    // style: the fast network, fresh, at 160 pixels.
    let weights = fresh_style_net(tmp.path());
    let out = tmp.path().join("style");
    let (ok, _, err) = cli(&[
        "style",
        "predict",
        "--weights",
        &path(&weights),
        "--size",
        "160",
        "--out",
        &path(&out),
        "vid_stride=6",
        &path(&video),
    ]);
    assert!(ok, "{err}");
    assert_strided(&out.join("clip.avi"), (160, 120));
}
