//! Video files, cameras and network streams, read and written through OpenCV's `videoio`
//! (FFmpeg, GStreamer and V4L2 on Linux), for every task's `predict`.
//!
//! A [`VideoJob`] runs one source: a decoding thread reads frames ahead into a bounded queue,
//! the caller predicts and draws each, and an encoding thread writes the annotated video (and,
//! with `save_frames`, each frame as a JPEG), so neither decoding nor disk writes hold up the
//! model. Settings follow Ultralytics' `predict`: `vid_stride` keeps every n-th frame; a
//! stream's frames are dropped for the newest unless `stream_buffer`; the video is MJPG `.avi`
//! at the source's frame rate and size unless `fourcc` says otherwise. A file that ends before
//! the frame count its header promised, or whose frame cannot be decoded, keeps every frame
//! written so far; the job's [`VideoSummary::problem`] names the file and the frame. A stream
//! that drops is reopened a bounded number of times, then stops with a message.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use opencv::core::{Mat, Size, Vector};
use opencv::prelude::*;
use opencv::videoio::{self, VideoCapture, VideoWriter};

use crate::decode::{bgr_mat_to_rgb, rgb_to_mat, write_rgb};
use crate::error::{Error, Result};
use crate::image::RgbImage;
use crate::sources::Source;

/// File extensions (lower case) treated as videos, Ultralytics' list.
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "asf", "avi", "gif", "m4v", "mkv", "mov", "mp4", "mpeg", "mpg", "ts", "wmv", "webm",
];

/// True when `path` has one of [`VIDEO_EXTENSIONS`] (case-insensitive).
pub fn is_video_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// How video sources are read and written (Ultralytics' `predict` arguments of the same names).
#[derive(Debug, Clone, PartialEq)]
pub struct VideoOptions {
    /// Keep every `vid_stride`-th frame (1: all).
    pub vid_stride: usize,
    /// Streams: queue every frame (true) or predict on the newest only, dropping the frames the
    /// model had no time for (false, the default: a live view never falls behind).
    pub stream_buffer: bool,
    /// The output video's four-character codec; `None`: MJPG in `.avi`.
    pub fourcc: Option<String>,
    /// Write the annotated video.
    pub save_video: bool,
    /// Also write every annotated frame as `<stem>_frames/<stem>_<n>.jpg`.
    pub save_frames: bool,
    /// How many times a dropped stream is reopened before the job stops.
    pub reconnects: usize,
    /// How long opening (or reading from) a camera or stream may take before it is an error.
    pub timeout: Duration,
}

impl Default for VideoOptions {
    fn default() -> Self {
        VideoOptions {
            vid_stride: 1,
            stream_buffer: false,
            fourcc: None,
            save_video: true,
            save_frames: false,
            reconnects: 3,
            timeout: Duration::from_secs(10),
        }
    }
}

impl VideoOptions {
    /// Applies one `key=value` setting (`vid_stride`, `stream_buffer`, `fourcc`, `save`,
    /// `save_frames`); `Ok(false)` when the key is not a video setting.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool> {
        let bool_of = |v: &str| match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(Error::Invalid(format!("{key}={v}: expected true or false"))),
        };
        match key {
            "vid_stride" => {
                self.vid_stride =
                    value
                        .parse()
                        .ok()
                        .filter(|&n: &usize| n >= 1)
                        .ok_or_else(|| {
                            Error::Invalid(format!(
                                "vid_stride={value}: expected a whole number ≥ 1"
                            ))
                        })?
            }
            "stream_buffer" => self.stream_buffer = bool_of(value)?,
            "save" => self.save_video = bool_of(value)?,
            "save_frames" => self.save_frames = bool_of(value)?,
            "fourcc" => {
                if value.chars().count() != 4 {
                    return Err(Error::Invalid(format!(
                        "fourcc={value}: a codec is four characters (MJPG, mp4v, avc1, XVID)"
                    )));
                }
                self.fourcc = Some(value.to_string())
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Takes the video settings (`vid_stride=2`, `fourcc=mp4v`, …) out of `settings`, returning
    /// the options and the settings left for the task.
    pub fn from_settings(settings: Vec<String>) -> Result<(VideoOptions, Vec<String>)> {
        let mut opts = VideoOptions::default();
        let mut rest = Vec::new();
        for s in settings {
            match s.split_once('=') {
                Some((k, v)) if opts.set(k.trim(), v.trim())? => {}
                _ => rest.push(s),
            }
        }
        Ok((opts, rest))
    }

    /// Separates the video settings (`vid_stride=2`, …) from the sources of a command whose
    /// positional arguments are sources only: an argument with `=` that is neither an
    /// existing path nor a URL is a setting, and one that is not a video setting is an error
    /// naming it.
    pub fn from_sources(args: &[PathBuf]) -> Result<(VideoOptions, Vec<PathBuf>)> {
        let mut opts = VideoOptions::default();
        let mut sources = Vec::new();
        for arg in args {
            let text = arg.to_string_lossy();
            match text.split_once('=') {
                Some((k, v)) if !text.contains("://") && !arg.exists() => {
                    if !opts.set(k.trim(), v.trim())? {
                        return Err(Error::Invalid(format!(
                            "{text}: not a source, nor a video setting (vid_stride, \
                             stream_buffer, fourcc, save, save_frames)"
                        )));
                    }
                }
                _ => sources.push(arg.clone()),
            }
        }
        Ok((opts, sources))
    }

    /// The codec and the file extension it goes in: MJPG/.avi by default, `.mp4` for the
    /// MPEG-4 family, `.webm` for VP8/VP9, `.avi` otherwise.
    fn codec(&self) -> (String, &'static str) {
        let fourcc = self.fourcc.clone().unwrap_or_else(|| "MJPG".into());
        let ext = match fourcc.to_ascii_lowercase().as_str() {
            "mp4v" | "avc1" | "h264" | "x264" | "hev1" | "hvc1" => "mp4",
            "vp80" | "vp90" => "webm",
            _ => "avi",
        };
        (fourcc, ext)
    }
}

/// A source's geometry and timing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoInfo {
    /// Frames per second (30 where the source does not say, as Ultralytics assumes).
    pub fps: f64,
    /// Frame width in pixels.
    pub width: usize,
    /// Frame height in pixels.
    pub height: usize,
    /// The frames a file's header promises (`None` for cameras and streams).
    pub frames: Option<usize>,
}

/// One frame kept from a source.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Its number among the frames delivered, from 1 (label files are `<stem>_<number>.txt`;
    /// a live stream's dropped frames are not counted).
    pub number: usize,
    /// Its index in the source, from 0 (with `vid_stride` 2: 1, 3, 5, …).
    pub index: usize,
    /// The picture.
    pub image: RgbImage,
}

/// How a [`VideoJob`] ended.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoSummary {
    /// The source, as messages name it.
    pub source: String,
    /// Frames read and predicted.
    pub frames: usize,
    /// The annotated video, when one was written.
    pub output: Option<PathBuf>,
    /// Frames per second through the whole job (decode, predict, encode).
    pub fps: f64,
    /// Why it stopped early (a truncated or corrupt file, a stream that did not come back).
    pub problem: Option<String>,
}

enum Message {
    Frame(Frame),
    /// The source stopped early, after the frames already sent.
    Problem(String),
}

/// What a camera or stream URL is opened with: the backend and its time limits.
fn capture_params(timeout: Duration) -> Vector<i32> {
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    Vector::from_slice(&[
        videoio::CAP_PROP_OPEN_TIMEOUT_MSEC,
        ms,
        videoio::CAP_PROP_READ_TIMEOUT_MSEC,
        ms,
    ])
}

/// OpenCV's own warnings (a backend that could not open a camera, GStreamer's pipeline
/// notes) repeat what our errors say; they are kept to errors unless `OPENCV_LOG_LEVEL` asks.
fn quiet_opencv() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("OPENCV_LOG_LEVEL").is_none() {
            let _ = opencv::core::set_log_level(opencv::core::LogLevel::LOG_LEVEL_ERROR);
        }
    });
}

fn open_capture(source: &Source, timeout: Duration) -> Result<VideoCapture> {
    quiet_opencv();
    let name = source.name();
    let opened = |cap: opencv::Result<VideoCapture>| -> Result<VideoCapture> {
        let cap = cap.map_err(|e| Error::image(&name, e.to_string()))?;
        if cap.is_opened().unwrap_or(false) {
            Ok(cap)
        } else {
            Err(Error::image(
                &name,
                match source {
                    Source::Camera(_) => "could not be opened (no such camera, or it is busy)",
                    Source::Stream(_) => {
                        "could not be opened (unreachable, refused, or not a stream FFmpeg reads)"
                    }
                    _ => "could not be opened as a video (empty, corrupt, or a codec FFmpeg lacks)",
                },
            ))
        }
    };
    match source {
        Source::Video(path) => {
            let file = path
                .to_str()
                .ok_or_else(|| Error::image(path, "path is not valid UTF-8"))?;
            if std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) == 0 {
                return Err(Error::image(path, "empty file"));
            }
            opened(VideoCapture::from_file(file, videoio::CAP_FFMPEG))
        }
        // The time limits are FFmpeg's properties: V4L2 and GStreamer refuse them (and with
        // them the camera), and V4L2 gives up on a silent device by itself.
        Source::Camera(index) => opened(VideoCapture::new(*index, videoio::CAP_ANY)),
        Source::Stream(url) => opened(VideoCapture::from_file_with_params(
            url,
            videoio::CAP_FFMPEG,
            &capture_params(timeout),
        )),
        Source::Image(path) => Err(Error::image(path, "an image, not a video")),
    }
}

fn info_of(cap: &VideoCapture, source: &Source) -> Result<VideoInfo> {
    let get = |prop| cap.get(prop).unwrap_or(0.0);
    let fps = get(videoio::CAP_PROP_FPS);
    let count = get(videoio::CAP_PROP_FRAME_COUNT);
    Ok(VideoInfo {
        fps: if fps.is_finite() && fps > 0.0 {
            fps
        } else {
            30.0
        },
        width: get(videoio::CAP_PROP_FRAME_WIDTH).max(0.0) as usize,
        height: get(videoio::CAP_PROP_FRAME_HEIGHT).max(0.0) as usize,
        // A URL whose container says how many frames it has is a remote file, read as one (to
        // its end, no frame dropped); a live stream says nothing.
        frames: match source {
            Source::Video(_) | Source::Stream(_) if count.is_finite() && count >= 1.0 => {
                Some(count as usize)
            }
            _ => None,
        },
    })
}

/// Lowers the calling thread's scheduling priority (Linux: nice is per thread), so the
/// decoding and encoding threads take the cores only when the model's threads leave them: on
/// a machine whose cores the model fills, they fill its gaps instead of stalling its parallel
/// sections; with cores to spare they run as before.
fn yield_to_the_model() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on the calling thread (who = 0) with a valid nice value.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
}

/// Reads `source` on its own thread: grabs `stride` frames, decodes the last, sends it.
/// Files end quietly at their last frame, or with a [`Message::Problem`] when they end before
/// their header's count or a frame does not decode; streams are reopened on a drop.
fn decode_loop(
    mut cap: VideoCapture,
    source: Source,
    info: VideoInfo,
    opts: VideoOptions,
    stop: Arc<AtomicBool>,
    send: impl Fn(Message) -> bool,
) {
    yield_to_the_model();
    let name = source.name();
    let is_file = matches!(source, Source::Video(_)) || info.frames.is_some();
    let mut mat = Mat::default();
    let (mut grabbed, mut number, mut reconnects) = (0usize, 0usize, 0usize);
    loop {
        if stop.load(Ordering::Relaxed) {
            return; // the consumer has finished
        }
        let mut ok = true;
        for _ in 0..opts.vid_stride {
            ok = cap.grab().unwrap_or(false);
            if !ok {
                break;
            }
            grabbed += 1;
        }
        let decoded = ok && cap.retrieve(&mut mat, 0).unwrap_or(false) && !mat.empty();
        if decoded {
            reconnects = 0;
            match bgr_mat_to_rgb(&mat) {
                Ok(image) => {
                    number += 1;
                    let frame = Frame {
                        number,
                        index: grabbed - 1,
                        image,
                    };
                    if !send(Message::Frame(frame)) {
                        return; // the consumer stopped
                    }
                    continue;
                }
                Err(e) => {
                    send(Message::Problem(format!(
                        "{name}: frame {grabbed} could not be converted: {e}"
                    )));
                    return;
                }
            }
        }
        if is_file {
            if ok {
                // Grabbed but not decodable: a corrupt frame, wherever it is.
                send(Message::Problem(format!(
                    "{name}: frame {grabbed} could not be decoded (the file is corrupt); the \
                     {number} frames before it were kept"
                )));
            } else if let Some(total) = info.frames {
                // Containers without an index (mkv, webm, ts) estimate their frame count from
                // duration × rate: a 2 % shortfall is within that estimate, not a cut.
                if grabbed + total.div_ceil(50) < total {
                    send(Message::Problem(format!(
                        "{name}: frame {} of {total} could not be read (the file ends early or \
                         is corrupt); the {number} frames before it were kept",
                        grabbed + 1
                    )));
                }
            }
            return;
        }
        if reconnects >= opts.reconnects {
            send(Message::Problem(format!(
                "{name}: the stream stopped sending frames; reopening it failed {} times",
                opts.reconnects
            )));
            return;
        }
        reconnects += 1;
        tracing::warn!(source = %name, attempt = reconnects, "stream dropped; reopening");
        std::thread::sleep(Duration::from_millis(500 * reconnects as u64));
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(again) = open_capture(&source, opts.timeout) {
            cap = again;
        }
    }
}

/// Encodes annotated frames on its own thread.
struct Encoder {
    send: Option<SyncSender<RgbImage>>,
    thread: Option<JoinHandle<Result<usize>>>,
}

impl Encoder {
    fn start(
        video: Option<(PathBuf, String, f64)>,
        frames_dir: Option<(PathBuf, String)>,
    ) -> Result<Encoder> {
        if let Some((dir, _)) = &frames_dir {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let (send, receive) = mpsc::sync_channel::<RgbImage>(8);
        let thread = std::thread::Builder::new()
            .name("video-encode".into())
            .spawn(move || -> Result<usize> {
                yield_to_the_model();
                let mut writer: Option<(VideoWriter, PathBuf, (usize, usize))> = None;
                let mut written = 0;
                for image in receive {
                    written += 1;
                    if let Some((dir, stem)) = &frames_dir {
                        write_rgb(&dir.join(format!("{stem}_{written}.jpg")), &image)?;
                    }
                    let Some((path, fourcc, fps)) = &video else {
                        continue;
                    };
                    if writer.is_none() {
                        writer = Some(open_writer(path, fourcc, *fps, &image)?);
                    }
                    if let Some((w, path, size)) = writer.as_mut() {
                        if (image.width, image.height) != *size {
                            return Err(Error::image(
                                &*path,
                                format!(
                                    "frame {written} is {}x{}, the video {}x{}",
                                    image.width, image.height, size.0, size.1
                                ),
                            ));
                        }
                        let bgr = rgb_to_mat(&image)?;
                        w.write(&bgr)
                            .map_err(|e| Error::image(&*path, e.to_string()))?;
                    }
                }
                if let Some((mut w, path, _)) = writer {
                    w.release()
                        .map_err(|e| Error::image(&path, e.to_string()))?;
                }
                Ok(written)
            })
            .map_err(|e| Error::Invalid(format!("starting the video encoder: {e}")))?;
        Ok(Encoder {
            send: Some(send),
            thread: Some(thread),
        })
    }

    /// Queues a frame; an error when the encoder has stopped (its own error comes from
    /// [`Encoder::finish`]).
    fn write(&mut self, image: RgbImage) -> bool {
        self.send.as_ref().is_some_and(|s| s.send(image).is_ok())
    }

    fn finish(&mut self) -> Result<usize> {
        drop(self.send.take());
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(Error::Invalid("the video encoder panicked".into())),
            None => Ok(0),
        }
    }
}

fn open_writer(
    path: &Path,
    fourcc: &str,
    fps: f64,
    first: &RgbImage,
) -> Result<(VideoWriter, PathBuf, (usize, usize))> {
    let file = path
        .to_str()
        .ok_or_else(|| Error::image(path, "path is not valid UTF-8"))?;
    let c: Vec<char> = fourcc.chars().collect();
    let code = VideoWriter::fourcc(c[0], c[1], c[2], c[3])?;
    let size = Size::new(first.width as i32, first.height as i32);
    // FFmpeg's encoders, as OpenCV's default order picks for these containers, named so a
    // slower built-in writer is never chosen instead.
    let writer = VideoWriter::new_with_backend(file, videoio::CAP_FFMPEG, code, fps, size, true)
        .map_err(|e| Error::image(path, e.to_string()))?;
    if !writer.is_opened().unwrap_or(false) {
        return Err(Error::image(
            path,
            format!("OpenCV could not open a {fourcc} video writer here"),
        ));
    }
    Ok((writer, path.to_path_buf(), (first.width, first.height)))
}

/// One video source being predicted: frames come from [`VideoJob::next_frame`], annotated
/// frames go back through [`VideoJob::write`], and [`VideoJob::finish`] flushes the video and
/// says how it went.
pub struct VideoJob {
    source: Source,
    info: VideoInfo,
    receive: Receiver<Message>,
    latest_only: bool,
    decoder: Option<JoinHandle<()>>,
    encoder: Encoder,
    output: Option<PathBuf>,
    problem: Option<String>,
    frames: usize,
    started: Instant,
    progress: ProgressBar,
    /// How long a live source may send nothing: its read timeout plus every reopening.
    patience: Duration,
    stop: Arc<AtomicBool>,
}

impl VideoJob {
    /// Opens `source` (an error naming it when it cannot be opened) and starts its threads;
    /// the annotated video goes to `<out_dir>/<stem>.<ext>`.
    pub fn start(source: &Source, out_dir: &Path, opts: &VideoOptions) -> Result<VideoJob> {
        if opts.vid_stride == 0 {
            return Err(Error::Invalid("vid_stride=0: expected 1 or more".into()));
        }
        if let Some(f) = opts.fourcc.as_ref().filter(|f| f.chars().count() != 4) {
            return Err(Error::Invalid(format!(
                "fourcc={f}: a codec is four characters (MJPG, mp4v, avc1, XVID)"
            )));
        }
        let cap = open_capture(source, opts.timeout)?;
        let info = info_of(&cap, source)?;
        let stem = source.stem();
        std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
        let (fourcc, ext) = opts.codec();
        let output = opts
            .save_video
            .then(|| out_dir.join(format!("{stem}.{ext}")));
        let frames_dir = opts
            .save_frames
            .then(|| (out_dir.join(format!("{stem}_frames")), stem.clone()));
        // Every vid_stride-th frame at the source's rate would play vid_stride times too fast:
        // the video is written at the rate of the frames kept, as Ultralytics does.
        let out_fps = info.fps / opts.vid_stride as f64;
        let encoder = Encoder::start(output.clone().map(|p| (p, fourcc, out_fps)), frames_dir)?;
        let stop = Arc::new(AtomicBool::new(false));
        let is_file = matches!(source, Source::Video(_)) || info.frames.is_some();
        let latest_only = !is_file && !opts.stream_buffer;
        let (decoder, receive) = if latest_only {
            // Unbounded, but drained to the newest frame at every read.
            let (send, receive) = mpsc::channel();
            let (src, o, halt) = (source.clone(), opts.clone(), stop.clone());
            let thread = std::thread::Builder::new()
                .name("video-decode".into())
                .spawn(move || decode_loop(cap, src, info, o, halt, |m| send.send(m).is_ok()));
            (thread, receive)
        } else {
            // Files are read ahead a little; buffered streams keep up to 30 frames (Ultralytics).
            let (send, receive) = mpsc::sync_channel(if is_file { 8 } else { 30 });
            let (src, o, halt) = (source.clone(), opts.clone(), stop.clone());
            let thread = std::thread::Builder::new()
                .name("video-decode".into())
                .spawn(move || decode_loop(cap, src, info, o, halt, |m| send.send(m).is_ok()));
            (thread, receive)
        };
        let decoder =
            decoder.map_err(|e| Error::Invalid(format!("starting the video decoder: {e}")))?;
        let progress = match info.frames {
            Some(total) => ProgressBar::new((total / opts.vid_stride) as u64).with_style(
                ProgressStyle::with_template(
                    "{msg} {bar:30} {pos}/{len} frames, {per_sec}, eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{msg} {pos} frames, {per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        }
        .with_message(source.name());
        Ok(VideoJob {
            source: source.clone(),
            info,
            receive,
            latest_only,
            decoder: Some(decoder),
            encoder,
            output,
            problem: None,
            frames: 0,
            started: Instant::now(),
            progress,
            // The read timeout, then each reopening: its pause and its open timeout.
            patience: opts.timeout * (opts.reconnects as u32 + 1)
                + Duration::from_millis(250 * (opts.reconnects * (opts.reconnects + 1)) as u64)
                + Duration::from_secs(5),
            stop,
        })
    }

    /// The source's frame rate, size and (files) frame count.
    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// The next frame, or `None` at the end (or after a problem [`VideoJob::finish`] reports).
    pub fn next_frame(&mut self) -> Option<Frame> {
        if self.problem.is_some() {
            return None;
        }
        let first = if self.latest_only {
            // A camera or stream that sends nothing for the timeout has stopped.
            match self.receive.recv_timeout(self.patience) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    self.problem = Some(format!(
                        "{}: no frame for {} s",
                        self.source.name(),
                        self.patience.as_secs()
                    ));
                    return None;
                }
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        } else {
            match self.receive.recv() {
                Ok(m) => m,
                Err(_) => return None,
            }
        };
        let mut message = first;
        if self.latest_only && matches!(message, Message::Frame(_)) {
            // Skip to the newest frame; a problem behind it still counts.
            while let Ok(next) = self.receive.try_recv() {
                match next {
                    Message::Frame(f) => message = Message::Frame(f),
                    Message::Problem(p) => {
                        self.problem = Some(p);
                        break;
                    }
                }
            }
        }
        match message {
            Message::Frame(mut frame) => {
                self.frames += 1;
                // Numbered as delivered: a live stream's dropped frames leave no gaps, so labels,
                // frame files and the tracker's frames agree.
                frame.number = self.frames;
                self.progress.inc(1);
                Some(frame)
            }
            Message::Problem(p) => {
                self.problem = Some(p);
                None
            }
        }
    }

    /// Queues an annotated frame for the video (and the frame files).
    pub fn write(&mut self, annotated: RgbImage) -> Result<()> {
        if self.encoder.write(annotated) {
            return Ok(());
        }
        // The encoder stopped: its error says why.
        self.encoder.finish()?;
        Err(Error::Invalid("the video encoder stopped".into()))
    }

    /// Stops reading, flushes the video, and says what was done.
    pub fn finish(mut self) -> Result<VideoSummary> {
        self.progress.finish_and_clear();
        // The flag stops a decoder between reads and reopenings; dropping the receiver makes
        // one blocked on a full queue return.
        self.stop.store(true, Ordering::Relaxed);
        let decoder = self.decoder.take();
        let receive = std::mem::replace(&mut self.receive, mpsc::channel().1);
        drop(receive);
        if let Some(thread) = decoder {
            if thread.join().is_err() && self.problem.is_none() {
                self.problem = Some(format!(
                    "{}: the decoder stopped unexpectedly after {} frames",
                    self.source.name(),
                    self.frames
                ));
            }
        }
        self.encoder.finish()?;
        let seconds = self.started.elapsed().as_secs_f64();
        Ok(VideoSummary {
            source: self.source.name(),
            frames: self.frames,
            output: self.output.filter(|_| self.frames > 0),
            fps: if seconds > 0.0 {
                self.frames as f64 / seconds
            } else {
                0.0
            },
            problem: self.problem,
        })
    }
}

/// How [`run_frames`] went for a source: done (perhaps stopped early, as the summary says), or
/// not openable at all (a file to skip, not a reason to stop the run).
#[derive(Debug)]
pub enum VideoOutcome {
    /// Every frame read was predicted and written.
    Done(VideoSummary),
    /// The source could not be opened.
    Unreadable(Error),
}

/// Runs every frame of `source` through `annotate` (which predicts it, records what it found,
/// and returns the frame to write) into `<out_dir>/<stem>.<ext>`. An error of `annotate` ends
/// the run, the frames before it still written.
pub fn run_frames<E: From<Error>>(
    source: &Source,
    out_dir: &Path,
    opts: &VideoOptions,
    mut annotate: impl FnMut(Frame) -> std::result::Result<RgbImage, E>,
) -> std::result::Result<VideoOutcome, E> {
    let mut job = match VideoJob::start(source, out_dir, opts) {
        Ok(job) => job,
        Err(e) => return Ok(VideoOutcome::Unreadable(e)),
    };
    let looped = (|| -> std::result::Result<(), E> {
        while let Some(frame) = job.next_frame() {
            let drawn = annotate(frame)?;
            job.write(drawn)?;
        }
        Ok(())
    })();
    // The frames so far are flushed whatever happened; the closure's error comes first.
    let summary = job.finish();
    looped?;
    Ok(VideoOutcome::Done(summary?))
}

impl VideoSummary {
    /// "clip.mp4: 300 frames, 41.2 frames/s → runs/detect/predict/clip.avi".
    pub fn line(&self) -> String {
        let out = self
            .output
            .as_ref()
            .map(|p| format!(" → {}", p.display()))
            .unwrap_or_default();
        format!(
            "{}: {} frames, {:.1} frames/s{out}",
            self.source, self.frames, self.fps
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(path: &Path, frames: usize) {
        let code = VideoWriter::fourcc('M', 'J', 'P', 'G').unwrap();
        let mut w =
            VideoWriter::new(path.to_str().unwrap(), code, 25.0, Size::new(64, 48), true).unwrap();
        assert!(w.is_opened().unwrap());
        for i in 0..frames {
            let mut img = RgbImage::filled(64, 48, [10, 20, 30]);
            for y in 10..20 {
                for x in 0..10 {
                    img.set_pixel((x + i * 5) % 64, y, [250, 250, 250]);
                }
            }
            w.write(&rgb_to_mat(&img).unwrap()).unwrap();
        }
        w.release().unwrap();
    }

    #[test]
    fn a_clip_is_read_with_its_stride_and_written_at_its_size_and_rate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("moving.avi");
        clip(&path, 10);
        let opts = VideoOptions {
            vid_stride: 3,
            save_frames: true,
            ..VideoOptions::default()
        };
        let out = dir.path().join("out");
        let mut job = VideoJob::start(&Source::Video(path.clone()), &out, &opts).unwrap();
        assert_eq!(job.info().frames, Some(10));
        assert_eq!((job.info().width, job.info().height), (64, 48));
        assert!((job.info().fps - 25.0).abs() < 1e-6);
        let mut seen = Vec::new();
        while let Some(frame) = job.next_frame() {
            seen.push((frame.number, frame.index));
            job.write(frame.image).unwrap();
        }
        let summary = job.finish().unwrap();
        assert_eq!(seen, [(1, 2), (2, 5), (3, 8)]);
        assert_eq!(summary.problem, None);
        assert_eq!(summary.frames, 3);
        assert!(out.join("moving_frames/moving_3.jpg").is_file());
        let cap = VideoCapture::from_file(
            out.join("moving.avi").to_str().unwrap(),
            videoio::CAP_FFMPEG,
        )
        .unwrap();
        let back = info_of(&cap, &Source::Video(out.join("moving.avi"))).unwrap();
        assert_eq!((back.frames, back.width, back.height), (Some(3), 64, 48));
        // Written at the rate of the frames kept: 25 / 3.
        assert!((back.fps - 25.0 / 3.0).abs() < 1e-3, "{}", back.fps);
    }

    #[test]
    fn an_empty_file_and_a_missing_camera_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.mp4");
        std::fs::write(&empty, b"").unwrap();
        let opts = VideoOptions::default();
        let err = VideoJob::start(&Source::Video(empty), dir.path(), &opts)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("empty.mp4: empty file"), "{err}");
        let err = VideoJob::start(&Source::Camera(97), dir.path(), &opts)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("camera 97: could not be opened"), "{err}");
    }

    #[test]
    fn settings_parse_and_refuse_bad_values() {
        let mut o = VideoOptions::default();
        assert!(o.set("vid_stride", "2").unwrap());
        assert!(o.set("fourcc", "mp4v").unwrap());
        assert!(!o.set("conf", "0.3").unwrap());
        assert_eq!((o.vid_stride, o.codec()), (2, ("mp4v".to_string(), "mp4")));
        assert!(o.set("vid_stride", "0").is_err());
        let (o, rest) =
            VideoOptions::from_settings(vec!["conf=0.5".into(), "save_frames=true".into()])
                .unwrap();
        assert!(o.save_frames);
        assert_eq!(rest, ["conf=0.5"]);
        assert!(VideoOptions::default().set("fourcc", "MJPEG").is_err());
        let args: Vec<PathBuf> = ["a.jpg", "vid_stride=3", "rtsp://h/x?a=b"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let (o, sources) = VideoOptions::from_sources(&args).unwrap();
        assert_eq!(o.vid_stride, 3);
        assert_eq!(
            sources,
            [PathBuf::from("a.jpg"), PathBuf::from("rtsp://h/x?a=b")]
        );
        let err = VideoOptions::from_sources(&[PathBuf::from("conf=0.2")]).unwrap_err();
        assert!(err.to_string().contains("conf=0.2: not a source"), "{err}");
    }
}
