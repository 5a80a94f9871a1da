//! Log capture with real worker processes writing through the `StdioFactory`: bursts, partial
//! lines, rotation, following across rotation, time prefixes.
//!
//! The tests run one at a time (they share a lock) so that the CPU time printed for the
//! bursts is the sink's, not a neighbour test's. Each has a hard deadline and kills its
//! children whatever happens.

use muster::logs::{
    DEFAULT_TIME_FORMAT, FollowedLine, LogConfig, LogSink, MAX_LINE, Prefix, follow, rotated_path,
    tail_lines,
};
use muster_cluster::policy::WorkerId;
use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(90);
const BURST: u32 = 200_000;

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `test` alone, on a single-threaded runtime like the supervisor's, within [`DEADLINE`].
fn run<F: Future<Output = ()>>(test: F) {
    let _alone = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(DEADLINE, test)
            .await
            .expect("the test ran past its deadline");
    });
}

/// A directory under the system's temp dir, removed with everything in it on drop.
struct TestDir(PathBuf);

impl TestDir {
    fn new(tag: &str) -> TestDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("muster-logs-it-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TestDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Workers started with the sink's pipes; killed on drop if still running.
struct Workers(Vec<Child>);

impl Workers {
    /// One `sh -c SCRIPT` per script, as workers 1, 2, …
    fn start(sink: &LogSink, scripts: &[String]) -> Workers {
        let factory = sink.stdio_factory();
        let mut children = Vec::new();
        for (i, script) in scripts.iter().enumerate() {
            let (out, err) = factory(WorkerId(i as u64 + 1)).unwrap();
            children.push(
                Command::new("sh")
                    .args(["-c", script])
                    .stdout(out)
                    .stderr(err)
                    .spawn()
                    .unwrap(),
            );
        }
        Workers(children)
    }

    async fn wait(&mut self) {
        loop {
            let mut running = false;
            for c in &mut self.0 {
                let status = c.try_wait().unwrap();
                if let Some(s) = status {
                    assert!(s.success(), "a worker failed: {s}");
                } else {
                    running = true;
                }
            }
            if !running {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn files(dir: &Path, max_size: Option<u64>, keep: u32) -> LogConfig {
    LogConfig {
        out_path: dir.join("app-out.log"),
        err_path: dir.join("app-err.log"),
        timestamps: None,
        max_size,
        keep,
        prefix: Prefix::None,
        private_root: None,
    }
}

/// CPU time of this process, all its threads (living or ended), in nanoseconds.
fn cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn read_lines(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{path:?} ends mid-line"
    );
    text.lines().map(str::to_owned).collect()
}

/// Every worker wrote `w<k> 1` … `w<k> BURST`: all there, whole, each worker's in order.
fn check_burst(lines: &[String], workers: u32) {
    assert_eq!(lines.len(), (BURST * workers) as usize);
    let mut next = vec![1u32; workers as usize];
    for line in lines {
        let (w, n) = line
            .strip_prefix('w')
            .and_then(|l| l.split_once(' '))
            .unwrap_or_else(|| panic!("mangled line {line:?}"));
        let w: usize = w
            .parse()
            .unwrap_or_else(|_| panic!("mangled line {line:?}"));
        let n: u32 = n
            .parse()
            .unwrap_or_else(|_| panic!("mangled line {line:?}"));
        assert_eq!(n, next[w - 1], "worker {w} out of order");
        next[w - 1] += 1;
    }
}

fn burst(workers: u32) {
    run(async move {
        let dir = TestDir::new("burst");
        let config = files(dir.path(), None, 0);
        let out = config.out_path.clone();
        let sink = LogSink::new(config).unwrap();
        let scripts: Vec<String> = (1..=workers)
            .map(|w| format!("seq -f 'w{w} %.0f' 1 {BURST}"))
            .collect();
        let cpu = cpu_time();
        let started = Instant::now();
        let mut running = Workers::start(&sink, &scripts);
        running.wait().await;
        sink.close().await;
        let wall = started.elapsed();
        let cpu = cpu_time().saturating_sub(cpu);
        let bytes = fs::metadata(&out).unwrap().len();
        println!(
            "burst: {workers} x {BURST} lines ({:.1} MB) written in {:.0} ms; \
             sink CPU {:.1} ms (this process, all threads)",
            bytes as f64 / 1e6,
            wall.as_secs_f64() * 1e3,
            cpu.as_secs_f64() * 1e3
        );
        check_burst(&read_lines(&out), workers);
    });
}

#[test]
fn burst_of_200k_lines_from_one_worker() {
    burst(1);
}

#[test]
fn burst_of_200k_lines_from_each_of_four_workers() {
    burst(4);
}

#[test]
fn partial_lines_are_written_whole() {
    run(async {
        let dir = TestDir::new("partial");
        let config = files(dir.path(), None, 0);
        let out = config.out_path.clone();
        let sink = LogSink::new(config).unwrap();
        // A second worker floods while the first is mid-line.
        let mut running = Workers::start(
            &sink,
            &[
                "printf ab; sleep 0.3; printf 'c\\nd'".to_owned(),
                "for i in $(seq 1 2000); do echo xxxxxxxx; done".to_owned(),
            ],
        );
        running.wait().await;
        sink.close().await;
        let lines = read_lines(&out);
        let mine: Vec<&String> = lines.iter().filter(|l| *l != "xxxxxxxx").collect();
        assert_eq!(mine, ["abc", "d"]);
        assert_eq!(lines.len(), 2002);
    });
}

#[test]
fn lines_longer_than_a_mebibyte_are_cut() {
    run(async {
        let dir = TestDir::new("long");
        let config = files(dir.path(), None, 0);
        let out = config.out_path.clone();
        let sink = LogSink::new(config).unwrap();
        let mut running = Workers::start(
            &sink,
            &["head -c 2500000 /dev/zero | tr '\\0' x; echo; echo after".to_owned()],
        );
        running.wait().await;
        sink.close().await;
        let lengths: Vec<usize> = read_lines(&out).iter().map(String::len).collect();
        assert_eq!(lengths, [MAX_LINE, MAX_LINE, 2_500_000 - 2 * MAX_LINE, 5]);
    });
}

#[test]
fn rotation_keeps_the_newest_lines_whole() {
    run(async {
        let dir = TestDir::new("rotate");
        let config = files(dir.path(), Some(10 * 1024), 3);
        let out = config.out_path.clone();
        let sink = LogSink::new(config).unwrap();
        // 7-byte lines, 100 KiB in all.
        let total = 100 * 1024 / 7;
        let mut running = Workers::start(&sink, &[format!("seq -f '%06.0f' 1 {total}")]);
        running.wait().await;
        sink.close().await;

        assert!(
            !rotated_path(&out, 4).exists(),
            "only 3 rotated files are kept"
        );
        let mut kept = Vec::new();
        for path in [3, 2, 1]
            .map(|n| rotated_path(&out, n))
            .iter()
            .chain([&out])
        {
            let size = fs::metadata(path).unwrap().len();
            assert!(size <= 10 * 1024, "{path:?} is {size} bytes");
            if path != &out {
                assert!(
                    size > 10 * 1024 - 7,
                    "{path:?} was rotated early: {size} bytes"
                );
            }
            kept.extend(read_lines(path));
        }
        for line in &kept {
            assert_eq!(line.len(), 6, "split line {line:?}");
        }
        let numbers: Vec<u32> = kept.iter().map(|l| l.parse().unwrap()).collect();
        let first = numbers[0];
        assert_eq!(numbers, (first..=total).collect::<Vec<_>>());
        assert!(
            numbers.len() > 3 * (10 * 1024 / 7),
            "{} lines kept",
            numbers.len()
        );
        // The tail reaches back into the rotated files.
        let want: Vec<String> = (total - 2999..=total).map(|n| format!("{n:06}")).collect();
        assert_eq!(tail_lines(&out, 3000).unwrap(), want);
    });
}

/// Follows the sink's stdout file while one worker runs `script`, which prints 1..=`last`.
async fn follow_while_rotating(max_size: u64, keep: u32, script: String, last: u32) {
    let dir = TestDir::new("follow");
    let config = files(dir.path(), Some(max_size), keep);
    let out = config.out_path.clone();
    let sink = LogSink::new(config).unwrap();
    let mut follower = follow(std::slice::from_ref(&out), 0).unwrap();
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        let want = last.to_string();
        loop {
            let FollowedLine { source, line } = follower.next().await.unwrap();
            assert_eq!(source, 0);
            let done = line == want;
            seen.push(line);
            if done {
                break;
            }
        }
        // Anything more would be a line seen twice.
        let more = tokio::time::timeout(Duration::from_millis(500), follower.next()).await;
        assert!(more.is_err(), "an extra line: {more:?}");
        seen
    });
    let mut running = Workers::start(&sink, &[script]);
    running.wait().await;
    sink.close().await;
    let rotated = (1..)
        .take_while(|&n| rotated_path(&out, n).exists())
        .count();
    assert!(rotated > 0, "the writer never rotated");
    let seen = reader.await.unwrap();
    let want: Vec<String> = (1..=last).map(|n| n.to_string()).collect();
    assert!(seen == want, "lines seen: {} of {last}", seen.len());
}

#[test]
fn follow_sees_every_line_once_while_the_file_rotates_slowly() {
    // About five rotations per second, each under one poll interval.
    let script = "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo $i; \
                  case $i in *[05]0) sleep 0.05;; esac; done";
    run(follow_while_rotating(1024, 5, script.to_owned(), 3000));
}

#[test]
fn follow_catches_up_over_many_rotations() {
    // A burst rotates dozens of times between two polls; the follower walks every kept file.
    run(follow_while_rotating(
        4096,
        100,
        "seq 1 30000".to_owned(),
        30000,
    ));
}

#[test]
fn timestamps_prefix_each_line() {
    run(async {
        let dir = TestDir::new("time");
        let mut config = files(dir.path(), None, 0);
        config.timestamps = Some(DEFAULT_TIME_FORMAT.to_owned());
        let out = config.out_path.clone();
        let sink = LogSink::new(config).unwrap();
        let mut running = Workers::start(&sink, &["echo hello; echo world".to_owned()]);
        running.wait().await;
        sink.close().await;
        let now = chrono::Local::now();
        for (line, word) in read_lines(&out).iter().zip(["hello", "world"]) {
            let (stamp, rest) = line.split_at(29);
            assert_eq!(rest, format!(": {word}"), "{line:?}");
            let at = chrono::DateTime::parse_from_str(stamp, "%Y-%m-%dT%H:%M:%S%.3f%:z")
                .unwrap_or_else(|e| panic!("{stamp:?}: {e}"));
            let age = now.signed_duration_since(at);
            assert!(age.num_seconds().abs() < 30, "{stamp} is not now");
        }

        // pm2's day.js tokens.
        let mut config = files(dir.path(), None, 0);
        config.out_path = dir.path().join("dayjs.log");
        config.timestamps = Some("YYYY/MM/DD HH:mm".to_owned());
        let sink = LogSink::new(config).unwrap();
        let mut running = Workers::start(&sink, &["echo x".to_owned()]);
        running.wait().await;
        sink.close().await;
        let line = &read_lines(&dir.path().join("dayjs.log"))[0];
        let shape = "9999/99/99 99:99: x";
        let fits = line.len() == shape.len()
            && line
                .bytes()
                .zip(shape.bytes())
                .all(|(c, s)| c == s || (s == b'9' && c.is_ascii_digit()));
        assert!(fits, "{line:?} is not shaped {shape:?}");
    });
}

#[test]
fn a_bad_time_format_is_refused() {
    run(async {
        let dir = TestDir::new("badtime");
        let mut config = files(dir.path(), None, 0);
        config.timestamps = Some("%Y %Q".to_owned());
        let err = LogSink::new(config).unwrap_err().to_string();
        assert!(err.contains("%Y %Q"), "{err}");
    });
}

#[test]
fn flush_empties_the_logs_and_writing_goes_on() {
    run(async {
        let dir = TestDir::new("flush");
        let config = files(dir.path(), Some(100), 3);
        let (out, err) = (config.out_path.clone(), config.err_path.clone());
        let sink = LogSink::new(config).unwrap();
        let mut running = Workers::start(
            &sink,
            &["seq 1 100; echo e >&2; sleep 0.5; echo after".to_owned()],
        );
        // Wait until the first lines are all in, and rotated.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(tail_lines(&out, 1).unwrap() == ["100"] && fs::metadata(&err).unwrap().len() > 0) {
            assert!(Instant::now() < deadline, "the first lines never arrived");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sink.flush().unwrap();
        assert_eq!(fs::metadata(&err).unwrap().len(), 0);
        assert!(!rotated_path(&out, 1).exists());
        running.wait().await;
        sink.close().await;
        assert_eq!(read_lines(&out).last().map(String::as_str), Some("after"));
    });
}
