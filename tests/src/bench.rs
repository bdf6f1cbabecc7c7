//! Helpers shared by the workspace's benchmark programs (`canal-server/benches/decode.rs`,
//! `canal-server/benches/e2e.rs`, `otter-node/benches/pipeline.rs`): environment knobs, process
//! CPU time and peak RSS from `/proc`, the "other work" watcher, the machine and tree lines of a
//! report, number formatting and the docs/PERFORMANCE.md section writer.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// The environment variable `name` parsed as a number, or `default` when it is not set.
pub fn env_num<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={v} is not a number")),
        Err(_) => Ok(default),
    }
}

/// Whether the environment variable `name` is `1`.
pub fn env_flag(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| v == "1")
}

/// `1234567.8` as `1 234 568`.
pub fn group(x: f64) -> String {
    let digits = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// The nearest-rank `q` quantile (0 < `q` ≤ 1) of `sorted` (ascending); the default value when
/// it is empty.
pub fn nearest_rank<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// The number of CPUs this process may use (1 if unknown).
pub fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Connection options for `root` (no password) on a harness MariaDB at loopback TCP `port`, for
/// threads that open their own connections.
pub fn root_opts(port: u16) -> mysql_async::OptsBuilder {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some("root"))
        .prefer_socket(false)
}

/// The last `n` lines of the text file at `path` (empty if it cannot be read).
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// /proc

/// utime + stime of process `pid`, in seconds (0 when it is gone).
pub fn cpu_secs(pid: u32) -> f64 {
    stat_cpu_secs(&format!("/proc/{pid}/stat"))
}

/// utime + stime of this process (all its threads), in seconds.
pub fn own_cpu_secs() -> f64 {
    stat_cpu_secs("/proc/self/stat")
}

/// cutime + cstime of this process: the CPU of every child it has waited for (with theirs), in
/// seconds. The difference around a [`time_shell`] is the CPU of that command's processes.
pub fn children_cpu_secs() -> f64 {
    stat_fields_secs("/proc/self/stat", 13)
}

/// utime + stime of a `/proc/…/stat` file, in seconds.
fn stat_cpu_secs(stat: &str) -> f64 {
    stat_fields_secs(stat, 11)
}

/// The sum of two adjacent tick fields of a `/proc/…/stat` file (counted from the field after
/// the state), in seconds: 11 is utime + stime, 13 cutime + cstime.
fn stat_fields_secs(stat: &str, first: usize) -> f64 {
    let Ok(text) = std::fs::read_to_string(stat) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f
        .get(first)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        + f.get(first + 1)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
    ticks / clock_ticks()
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 if that fails).
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Peak RSS (`VmHWM`) of process `pid` in KiB (0 when it is gone).
pub fn vm_hwm_kb_of(pid: u32) -> u64 {
    status_vm_hwm_kb(&format!("/proc/{pid}/status"))
}

/// Peak RSS (`VmHWM`) of this process in KiB.
pub fn vm_hwm_kb() -> u64 {
    status_vm_hwm_kb("/proc/self/status")
}

fn status_vm_hwm_kb(status: &str) -> u64 {
    std::fs::read_to_string(status)
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmHWM:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// Whether `pid` is `ancestor` or one of its descendants (walks the parent pids in `/proc`).
pub fn descends_from(mut pid: u32, ancestor: u32) -> bool {
    for _ in 0..64 {
        if pid == ancestor {
            return true;
        }
        if pid <= 1 {
            return false;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // The parent pid is the second field after the parenthesised command name.
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
        else {
            return false;
        };
        pid = ppid;
    }
    false
}

// ---------------------------------------------------------------------------------------------
// Other work on the machine

/// Other work seen on the machine while a bench runs: a thread calls a sampler once a second and
/// keeps every `(pid, command)` it returned.
pub struct OtherWork {
    seen: Arc<Mutex<BTreeMap<u32, String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl OtherWork {
    /// Starts sampling with `sample`: called at once, then after every second until
    /// [`OtherWork::finish`] (once more after the stop is asked for).
    pub fn watch<F>(mut sample: F) -> Self
    where
        F: FnMut() -> Vec<(u32, String)> + Send + 'static,
    {
        let seen = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || loop {
                let now = sample();
                if let Ok(mut s) = seen.lock() {
                    s.extend(now);
                }
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            })
        };
        OtherWork {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Samples [`pgrep_others`] with `flags` and `pattern` every second.
    pub fn pgrep(flags: &'static str, pattern: &'static str) -> Self {
        Self::watch(move || pgrep_others(flags, pattern))
    }

    /// Stops sampling; returns what was seen, one `pid command` per line.
    pub fn finish(&mut self) -> String {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.seen
            .lock()
            .map(|s| {
                s.iter()
                    .map(|(pid, cmd)| format!("{pid} {cmd}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }
}

/// `pgrep {flags} {pattern}` (e.g. `-af` to match the whole command line, `-a` the process name)
/// without this process, its parent (`cargo bench`) and its descendants; commands cut to 150
/// characters.
pub fn pgrep_others(flags: &str, pattern: &str) -> Vec<(u32, String)> {
    let me = std::process::id();
    let parent = std::os::unix::process::parent_id();
    let Ok(out) = Command::new("pgrep").args([flags, pattern]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (pid, cmd) = l.split_once(' ')?;
            let pid: u32 = pid.parse().ok()?;
            (pid != parent && !descends_from(pid, me))
                .then(|| (pid, cmd.chars().take(150).collect()))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The report

/// The first two machine lines of a report: `- CPU: {model}, `nproc` = {n}; memory {MemTotal}` and
/// `- load average at the end of the run: {1, 5 and 15 min}`, each ending in a newline.
pub fn cpu_and_load_lines() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']))
        })
        .unwrap_or("unknown")
        .to_string();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_string()))
        })
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "- CPU: {model}, `nproc` = {}; memory {mem}\n- load average at the end of the run: {}\n",
        nproc(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// What `program arg` (e.g. `rustc --version`) prints: its stdout, or its stderr when stdout is
/// empty, trimmed; empty if it cannot run.
pub fn program_version(program: &Path, arg: &str) -> String {
    Command::new(program)
        .arg(arg)
        .output()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if s.is_empty() {
                s = String::from_utf8_lossy(&o.stderr).trim().to_string();
            }
            s
        })
        .unwrap_or_default()
}

/// The commit measured (`commit abc1234`), naming uncommitted changes under `paths` (the code in
/// the binaries): `commit abc1234 with uncommitted changes in a.rs, b.rs`.
pub fn tree_text(workspace: &Path, paths: &[&str]) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(workspace)
            .args(args)
            .output()
            // Only the end: a porcelain line starts with its two status columns, maybe a space.
            .map(|o| String::from_utf8_lossy(&o.stdout).trim_end().to_string())
            .unwrap_or_default()
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]);
    let mut args = vec!["status", "--porcelain", "--untracked-files=no", "--"];
    args.extend_from_slice(paths);
    let dirty = git(&args);
    if dirty.is_empty() {
        format!("commit {commit}")
    } else {
        format!(
            "commit {commit} with uncommitted changes in {}",
            dirty
                .lines()
                .filter_map(|l| l.get(3..))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Writes `section` (which starts with `begin` and ends with `end`) into `path`: replaces the text
/// between the markers when they are there, else appends `heading` and the section to the file,
/// creating it (with a `# Performance` title) if needed. Other sections are never touched.
pub fn write_doc(
    path: &Path,
    begin: &str,
    end: &str,
    heading: &str,
    section: &str,
) -> std::io::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let new = match (old.find(begin), old.find(end)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{section}{}", &old[..b], &old[e + end.len()..])
        }
        _ if old.trim().is_empty() => format!("# Performance\n\n{heading}\n\n{section}\n"),
        _ => format!("{}\n\n{heading}\n\n{section}\n", old.trim_end()),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, new)
}

/// Runs `sh -c cmd` and returns its wall time in seconds; fails with its stderr.
pub fn time_shell(cmd: &str) -> anyhow::Result<f64> {
    let t = std::time::Instant::now();
    let out = std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()?;
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        anyhow::bail!("`{cmd}` failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_puts_spaces_between_thousands() {
        assert_eq!(group(0.4), "0");
        assert_eq!(group(999.0), "999");
        assert_eq!(group(1234567.8), "1 234 568");
    }

    #[test]
    fn nearest_rank_picks_the_ceiling_rank() {
        let v: Vec<u64> = (1..=10).collect();
        assert_eq!(nearest_rank(&v, 0.5), 5);
        assert_eq!(nearest_rank(&v, 0.99), 10);
        assert_eq!(nearest_rank(&v, 1.0), 10);
        assert_eq!(nearest_rank(&v, 0.0), 1);
        assert_eq!(nearest_rank::<f64>(&[], 0.5), 0.0);
    }

    #[test]
    fn this_process_descends_from_itself_and_its_parent() {
        let me = std::process::id();
        assert!(descends_from(me, me));
        assert!(descends_from(me, std::os::unix::process::parent_id()));
        assert!(!descends_from(1, me));
    }

    #[test]
    fn write_doc_replaces_only_its_section() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docs").join("PERFORMANCE.md");
        write_doc(&path, "<b>", "<e>", "## H", "<b>\none\n<e>").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# Performance\n\n## H\n\n<b>\none\n<e>\n"
        );
        write_doc(&path, "<c>", "<f>", "## I", "<c>\nx\n<f>").unwrap();
        write_doc(&path, "<b>", "<e>", "## H", "<b>\ntwo\n<e>").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# Performance\n\n## H\n\n<b>\ntwo\n<e>\n\n## I\n\n<c>\nx\n<f>\n"
        );
    }

    #[test]
    fn own_cpu_and_rss_are_read() {
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(own_cpu_secs() >= 0.0);
        assert!(vm_hwm_kb() > 0);
        assert!(vm_hwm_kb_of(std::process::id()) > 0);
    }
}
