//! Finding the cluster another process runs on a data directory: `serve` keeps the local
//! database running while it serves, and a command started beside it must use that one (a
//! second `postgres` on the same directory refuses to start).
//!
//! PostgreSQL says where it is in `postmaster.pid`: line 1 its pid, line 4 its port, line 5
//! its socket directory, line 8 `ready` once it accepts connections. A file left behind by a
//! process that is gone (killed hard) names a pid that no longer lives.

use std::path::{Path, PathBuf};

use super::cluster::local_url;

/// A cluster some other process started and still runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningCluster {
    /// The postmaster's pid.
    pub pid: i32,
    pub port: u16,
    pub socket_dir: PathBuf,
}

impl RunningCluster {
    /// The cluster running on `data_dir`, if one is up and accepting connections.
    pub fn find(data_dir: &Path) -> Option<Self> {
        let content = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
        let running = Self::parse(&content)?;
        is_alive(running.pid).then_some(running)
    }

    fn parse(content: &str) -> Option<Self> {
        let lines: Vec<&str> = content.lines().map(str::trim).collect();
        let pid: i32 = lines.first()?.parse().ok().filter(|pid| *pid > 0)?;
        let port: u16 = lines.get(3)?.parse().ok()?;
        let socket_dir = PathBuf::from(lines.get(4).filter(|dir| !dir.is_empty())?);
        (lines.get(7) == Some(&"ready")).then_some(Self {
            pid,
            port,
            socket_dir,
        })
    }

    /// `postgres://postgres@localhost/DB?host=SOCKET_DIR`, as [`super::LocalCluster::url`].
    pub fn url(&self, database: &str) -> String {
        local_url(&self.socket_dir, self.port, database)
    }

    /// The process that started the postmaster (its parent): `serve`, or another command.
    pub fn owner(&self) -> Option<(i32, String)> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        // `pid (comm) state ppid …`: the name may hold spaces and parentheses.
        let ppid: i32 = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{ppid}/cmdline")).ok()?;
        let words: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|word| !word.is_empty())
            .map(|word| String::from_utf8_lossy(word).into_owned())
            .collect();
        Some((ppid, words.join(" ")))
    }
}

/// Whether `pid` names a live process (ours or, when we are root and it runs as `postgres`,
/// another user's: EPERM still says it exists).
fn is_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let exists = unsafe { libc::kill(pid, 0) } == 0;
    exists || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    const READY: &str =
        "4242\n/data/pgdata\n1764950000\n5432\n/data/pgdata.sock\n\n  1234 5\nready   \n";

    #[test]
    fn pid_file_of_a_ready_cluster_names_its_pid_port_and_socket_directory() {
        assert_eq!(
            RunningCluster::parse(READY),
            Some(RunningCluster {
                pid: 4242,
                port: 5432,
                socket_dir: PathBuf::from("/data/pgdata.sock"),
            })
        );
    }

    #[test]
    fn cluster_still_starting_or_stopping_is_not_ready() {
        for status in ["starting", "stopping", ""] {
            let content = READY.replace("ready   ", status);
            assert_eq!(RunningCluster::parse(&content), None, "{status:?}");
        }
        assert_eq!(RunningCluster::parse("4242\n/data\n"), None);
    }

    #[test]
    fn pid_file_left_by_a_process_that_is_gone_is_no_running_cluster() {
        let dir = tempfile::tempdir().unwrap();
        // Pids are below 2^22 on Linux: this one cannot live.
        let stale = READY.replace("4242", "2147483600");
        std::fs::write(dir.path().join("postmaster.pid"), stale).unwrap();
        assert_eq!(RunningCluster::find(dir.path()), None);
        let ours = READY.replace("4242", &std::process::id().to_string());
        std::fs::write(dir.path().join("postmaster.pid"), ours).unwrap();
        assert!(RunningCluster::find(dir.path()).is_some());
    }
}
