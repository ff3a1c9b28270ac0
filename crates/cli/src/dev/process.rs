//! The local processes of `mutu dev up` (the control plane, Pebble and its DNS
//! server): started detached in their own process group (they outlive
//! `mutu dev up`), each with a pid file and a log file in the state directory,
//! and recognised again by their command line or their environment.

use std::fs::{File, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Set on every process started here to its state directory, so that a process
/// whose command line names no path is recognised too.
pub const STATE_ENV: &str = "MUTU_DEV_STATE";

/// Where the pid and log files of one state directory live.
pub struct Processes {
    state: PathBuf,
}

impl Processes {
    pub fn new(state: &Path) -> Self {
        Self {
            state: state.to_path_buf(),
        }
    }

    fn pid_file(&self, name: &str) -> PathBuf {
        self.state.join("pids").join(format!("{name}.pid"))
    }

    pub fn log_file(&self, name: &str) -> PathBuf {
        self.state.join("logs").join(format!("{name}.log"))
    }

    /// The pid of `name` if it is running and is ours (its command line names the
    /// state directory, or its environment has [`STATE_ENV`] set to it, so a
    /// recycled pid is never mistaken for it).
    pub fn running(&self, name: &str) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.pid_file(name))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        (alive(pid) && (self.in_cmdline(pid) || self.in_environ(pid))).then_some(pid)
    }

    /// Whether the command line of `pid` names the state directory.
    fn in_cmdline(&self, pid: i32) -> bool {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        let state = self.state.to_string_lossy();
        String::from_utf8_lossy(&cmdline).contains(state.as_ref())
    }

    /// Whether the environment of `pid` has [`STATE_ENV`] set to the state directory.
    fn in_environ(&self, pid: i32) -> bool {
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            return false;
        };
        let wanted = format!("{STATE_ENV}={}", self.state.to_string_lossy());
        environ
            .split(|b| *b == 0)
            .any(|entry| entry == wanted.as_bytes())
    }

    /// Whether a process this invocation started is still running.
    pub fn started_alive(&self, pid: i32) -> bool {
        alive(pid)
    }

    /// Starts `program args` as `name`, detached, appending to its log file, with
    /// [`STATE_ENV`] and `envs` added to the environment.
    pub fn start(
        &self,
        name: &str,
        program: &Path,
        args: &[String],
        envs: &[(&str, &str)],
    ) -> anyhow::Result<i32> {
        for dir in ["pids", "logs"] {
            std::fs::create_dir_all(self.state.join(dir))?;
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_file(name))
            .with_context(|| format!("cannot open the log of {name}"))?;
        let child = Command::new(program)
            .args(args)
            .env(STATE_ENV, &self.state)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {name} ({})", program.display()))?;
        let pid = i32::try_from(child.id()).context("pid out of range")?;
        std::fs::write(self.pid_file(name), format!("{pid}\n"))?;
        Ok(pid)
    }

    /// Stops `name` (SIGTERM, then SIGKILL after `grace`). Returns whether it was running.
    pub async fn stop(&self, name: &str, grace: Duration) -> bool {
        let Some(pid) = self.running(name) else {
            let _ = std::fs::remove_file(self.pid_file(name));
            return false;
        };
        let target = Pid::from_raw(pid);
        let _ = kill(target, Signal::SIGTERM);
        let deadline = tokio::time::Instant::now() + grace;
        while self.running(name).is_some() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if self.running(name).is_some() {
            let _ = kill(target, Signal::SIGKILL);
            while self.running(name).is_some() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let _ = std::fs::remove_file(self.pid_file(name));
        true
    }

    /// The last lines of `name`'s log, for error messages.
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let Ok(file) = File::open(self.log_file(name)) else {
            return String::from("(no log)");
        };
        let text = std::io::read_to_string(file).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// Whether `pid` exists and is not a zombie (a child that exited but that
/// nobody reaped yet).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false)
}
