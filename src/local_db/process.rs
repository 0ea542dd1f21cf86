//! Running `initdb` and `postgres`: as the `postgres` OS user when we are root (`initdb`
//! refuses root), and tied to this process so that the server never outlives it.

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use super::LocalDbError;
use super::binaries::PgBinaries;

/// The OS user that runs PostgreSQL: `postgres` when we are root, else ourselves (`None`).
#[derive(Debug, Clone, Copy)]
pub(super) struct OsUser {
    pub(super) uid: u32,
    pub(super) gid: u32,
}

impl OsUser {
    pub(super) fn for_postgres() -> Result<Option<Self>, LocalDbError> {
        // SAFETY: geteuid never fails.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(None);
        }
        let name = CString::new("postgres").expect("static name");
        // SAFETY: getpwnam returns null or a pointer to static storage we read at once.
        let entry = unsafe { libc::getpwnam(name.as_ptr()) };
        if entry.is_null() {
            return Err(LocalDbError::NoPostgresUser);
        }
        // SAFETY: entry checked non-null above.
        let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
        Ok(Some(Self { uid, gid }))
    }

    pub(super) fn apply(self, command: &mut Command) {
        command.uid(self.uid).gid(self.gid);
        // std's uid switch also drops supplementary groups, so nothing of root's is kept.
        command.env("HOME", "/tmp");
    }
}

pub(super) fn initdb(
    binaries: &PgBinaries,
    data_dir: &Path,
    owner: Option<&OsUser>,
    durable: bool,
) -> Result<(), LocalDbError> {
    let mut command = Command::new(binaries.dir().join("initdb"));
    command
        .arg("-D")
        .arg(data_dir)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        ])
        .stdin(Stdio::null());
    if !durable {
        command.arg("--no-sync");
    }
    if let Some(owner) = owner {
        owner.apply(&mut command);
    }
    let output = command.output().map_err(|e| {
        LocalDbError::Io(
            format!("run {}", binaries.dir().join("initdb").display()),
            e,
        )
    })?;
    if !output.status.success() {
        return Err(LocalDbError::Command {
            what: "initdb".into(),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// Spawns `command` so that it cannot outlive this process: the kernel sends it SIGQUIT
/// (PostgreSQL's immediate shutdown) if we die. PR_SET_PDEATHSIG fires when the spawning
/// *thread* exits, so a dedicated thread spawns the child and stays until the child is gone.
pub(super) fn spawn_tied_to_process(
    mut command: Command,
    owner: Option<&OsUser>,
) -> Result<(i32, mpsc::Receiver<()>), LocalDbError> {
    if let Some(owner) = owner {
        owner.apply(&mut command);
    }
    // SAFETY: prctl is async-signal-safe; pre_exec runs after the uid switch, which would
    // otherwise clear the death signal.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (started_tx, started_rx) = mpsc::channel();
    let (exited_tx, exited_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("postgres-keeper".into())
        .spawn(move || match command.spawn() {
            Ok(mut child) => {
                let _ = started_tx.send(Ok(child.id() as i32));
                let _ = child.wait();
                let _ = exited_tx.send(());
            }
            Err(e) => {
                let _ = started_tx.send(Err(e));
            }
        })
        .map_err(|e| LocalDbError::Io("spawn keeper thread".into(), e))?;
    let pid = started_rx
        .recv()
        .map_err(|_| LocalDbError::Command {
            what: "postgres".into(),
            detail: "keeper thread died".into(),
        })?
        .map_err(|e| LocalDbError::Io("spawn postgres".into(), e))?;
    Ok((pid, exited_rx))
}
