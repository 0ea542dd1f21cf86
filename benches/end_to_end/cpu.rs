//! CPU accounting, from /proc (clock ticks).

use stripe_customer_sync::local_db::LocalCluster;

use crate::serve::Serve;

#[derive(Clone, Copy, Default)]
pub struct CpuSample {
    /// This process: the load generator (or nothing, while pgbench runs).
    pub client: u64,
    /// pgbench, once it has exited (children's time of this process).
    pub children: u64,
    pub serve: u64,
    /// The postmaster and all its children (backends, checkpointer, WAL writer, …), including
    /// those that exited in between (they are added to the postmaster's children's time).
    pub postgres: u64,
    machine_busy: u64,
    machine_total: u64,
}

fn proc_stat(pid: i32) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 2..];
    // Field 3 (state) is skipped: ppid is index 0 below, utime 10, stime 11, cutime 12,
    // cstime 13 (fields 4, 14, 15, 16, 17 of proc(5)).
    Some(
        after
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

impl CpuSample {
    pub fn take(serve: &Serve, cluster: &LocalCluster) -> Self {
        let own = proc_stat(std::process::id() as i32).unwrap_or_default();
        let serve_stat = proc_stat(serve.pid).unwrap_or_default();
        let postmaster = cluster.pid();
        let mut postgres = proc_stat(postmaster).map_or(0, |s| s[10] + s[11] + s[12] + s[13]);
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            if let Some(s) = proc_stat(pid).filter(|s| s[0] == postmaster as u64) {
                postgres += s[10] + s[11];
            }
        }
        let machine: Vec<u64> = std::fs::read_to_string("/proc/stat")
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        let total: u64 = machine.iter().sum();
        let idle = machine.get(3).copied().unwrap_or(0) + machine.get(4).copied().unwrap_or(0);
        Self {
            client: own.get(10).copied().unwrap_or(0) + own.get(11).copied().unwrap_or(0),
            children: own.get(12).copied().unwrap_or(0) + own.get(13).copied().unwrap_or(0),
            serve: serve_stat.get(10).copied().unwrap_or(0)
                + serve_stat.get(11).copied().unwrap_or(0),
            postgres,
            machine_busy: total - idle,
            machine_total: total,
        }
    }

    pub fn since(&self, before: &Self) -> Self {
        Self {
            client: self.client - before.client,
            children: self.children - before.children,
            serve: self.serve - before.serve,
            postgres: self.postgres.saturating_sub(before.postgres),
            machine_busy: self.machine_busy - before.machine_busy,
            machine_total: self.machine_total - before.machine_total,
        }
    }

    fn ms(ticks: u64) -> f64 {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        ticks as f64 * 1000.0 / hz
    }

    pub fn per_event_ms(&self, ticks: u64, events: usize) -> f64 {
        Self::ms(ticks) / events.max(1) as f64
    }

    /// CPU of everything else on the machine (other builds and tests, the kernel's own
    /// threads): the noise of the measurement, in cores.
    pub fn others_cores(&self) -> f64 {
        let ours = self.client + self.children + self.serve + self.postgres;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        self.machine_busy.saturating_sub(ours) as f64 / self.machine_total.max(1) as f64 * cores
    }

    /// Cores busy on average (of 2 here), from /proc/stat.
    pub fn cores_busy(&self) -> f64 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        self.machine_busy as f64 / self.machine_total.max(1) as f64 * cores
    }

    pub fn describe(&self, events: usize) -> String {
        format!(
            "CPU ms per event: load generator {:.3}, pgbench {:.3}, serve {:.3}, postgres {:.3}; \
             cores busy {:.2}, of which other processes {:.2}",
            self.per_event_ms(self.client, events),
            self.per_event_ms(self.children, events),
            self.per_event_ms(self.serve, events),
            self.per_event_ms(self.postgres, events),
            self.cores_busy(),
            self.others_cores()
        )
    }
}
