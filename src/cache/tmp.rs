//! Temporary files, and sweeping what a killed process left. Every temporary file pipe creates
//! in a project is named `.<name>.tmp<pid>-<n>` beside its destination (so a rename is atomic),
//! and before the first one in a folder, that folder is appended to the process's journal
//! `cache/tmp/<pid>.journal`. The next `run`, `pull` or `clean` reads the journals of dead
//! processes and removes their temporary files from exactly those folders, and their staging
//! folders `cache/tmp/<pid>/`: cheap (a no-op run reads one folder), and complete whatever the
//! process was doing (a lock file, the stat cache, store objects, checkpoints, outputs).

use super::fsafe;
use crate::layout::Layout;
use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A temp-file suffix unique within the machine: `tmp<pid>-<n>`.
pub fn suffix() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("tmp{}-{n}", std::process::id())
}

/// A temporary path beside `path` (`.<name>.tmp<pid>-<n>`), not journalled: for places that
/// are not a project (a folder remote, a job's scratch folder).
pub fn name_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}", suffix()))
}

/// Folders already in this process's journals.
fn journalled() -> &'static Mutex<HashSet<PathBuf>> {
    static SET: std::sync::OnceLock<Mutex<HashSet<PathBuf>>> = std::sync::OnceLock::new();
    SET.get_or_init(|| Mutex::new(HashSet::new()))
}

/// This machine's name: a journal is only ever swept on the machine that wrote it (a Slurm
/// job on another node of a shared folder has pids this machine cannot check).
fn host() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        let mut buf = [0u8; 256];
        // SAFETY: `buf` is writable for its whole length, which is passed.
        let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let name = String::from_utf8_lossy(&buf[..end]);
        let safe: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
            .collect();
        if r == 0 && !safe.is_empty() {
            safe
        } else {
            "localhost".into()
        }
    })
}

/// `cache/tmp/<pid>@<host>.journal`.
fn journal_path(root: &Path, pid: u32) -> PathBuf {
    Layout::new(root)
        .cache()
        .tmp()
        .join(format!("{pid}@{}.journal", host()))
}

/// The pid of one of this machine's journals, from its file name.
fn journal_pid(name: &str) -> Option<u32> {
    let (pid, h) = name.strip_suffix(".journal")?.split_once('@')?;
    (h == host()).then(|| pid.parse().ok())?
}

/// Records (once per process) that temporary files may be created in `dir`, a folder of the
/// project at `root`. Best effort: a journal that cannot be written only means a kill leaves
/// files the next sweep does not find.
fn record(root: &Path, dir: &Path) {
    let Ok(mut set) = journalled().lock() else {
        return;
    };
    if set.contains(dir) {
        return;
    }
    let Ok(rel) = dir.strip_prefix(root) else {
        return;
    };
    let journal = journal_path(root, std::process::id());
    let Some(jdir) = journal.parent() else { return };
    if fsafe::create_dir_all(root, jdir).is_err() || fsafe::check_parent(root, &journal).is_err() {
        return;
    }
    let line = serde_json::to_string(&rel.to_string_lossy()).unwrap_or_default();
    let opened = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&journal);
    if let Ok(mut f) = opened {
        if writeln!(f, "{line}").is_ok() {
            set.insert(dir.to_path_buf());
            if let Ok(mut roots) = journal_roots().lock() {
                roots.insert(root.to_path_buf());
            }
        }
    }
}

/// A temporary path beside `path` (a file of the project at `root`), its folder journalled so
/// that a kill before the rename leaves nothing the next run does not remove.
pub fn beside(root: &Path, path: &Path) -> PathBuf {
    if let Some(dir) = path.parent() {
        record(root, dir);
    }
    name_beside(path)
}

/// A temporary path inside the project's `cache/tmp/` (for downloads into the store).
pub fn in_cache_tmp(root: &Path, stem: &str) -> PathBuf {
    let dir = Layout::new(root).cache().tmp();
    record(root, &dir);
    dir.join(format!("{stem}.{}", suffix()))
}

/// Ends every journal this process wrote: called when a command returns (every temporary file
/// it created has been renamed or removed by then), so a command that writes after releasing
/// the project lock (an experiment's record) leaves no journal behind either.
pub fn finish_all() {
    let roots: Vec<PathBuf> = match journal_roots().lock() {
        Ok(r) => r.iter().cloned().collect(),
        Err(_) => return,
    };
    for root in roots {
        finish(&root);
    }
}

/// The project roots this process has a journal in.
fn journal_roots() -> &'static Mutex<HashSet<PathBuf>> {
    static SET: std::sync::OnceLock<Mutex<HashSet<PathBuf>>> = std::sync::OnceLock::new();
    SET.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Ends this process's journal in `root` (every temporary file it created has been renamed or
/// removed): called when a command that holds the project lock ends normally.
pub fn finish(root: &Path) {
    let journal = journal_path(root, std::process::id());
    if fsafe::remove(root, &journal).is_ok() {
        if let Ok(mut set) = journalled().lock() {
            set.retain(|d| !d.starts_with(root));
        }
        if let Ok(mut roots) = journal_roots().lock() {
            roots.remove(root);
        }
    }
}

/// The pid of a temporary file name (`….tmp<pid>-<n>`), if it is one.
fn tmp_pid(name: &str) -> Option<u32> {
    let i = name.rfind(".tmp")?;
    let (pid, n) = name[i + 4..].split_once('-')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether `pid` is another process that is no longer alive.
fn dead(pid: u32) -> bool {
    pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether a file name is a temporary file of a process that is no longer alive.
pub fn is_stale_tmp(name: &str) -> bool {
    tmp_pid(name).is_some_and(dead)
}

/// Removes the stale temporary files directly in `dir` (never following a link); how many.
fn sweep_dir(root: &Path, dir: &Path) -> usize {
    if fsafe::check_dir(root, dir).is_err() {
        return 0;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if is_stale_tmp(&name) && fsafe::remove(root, &e.path()).is_ok() {
            n += 1;
        }
    }
    n
}

/// The store's own folders, swept whenever a dead process left anything in `cache/tmp/` (its
/// journal may have been cut short by the kill): `cache/`, `runs/`, every `objects/<ab>/`,
/// `quarantine/`, `interrupted/`, `experiments/` and `pipelines/`.
fn store_dirs(root: &Path) -> Vec<PathBuf> {
    let l = Layout::new(root);
    let c = l.cache();
    let mut dirs = vec![
        c.dir().to_path_buf(),
        c.runs(),
        c.quarantine(),
        c.interrupted(),
        c.experiments(),
        l.pipelines(),
    ];
    if fsafe::check_dir(root, &c.objects()).is_ok() {
        if let Ok(rd) = std::fs::read_dir(c.objects()) {
            dirs.extend(rd.flatten().map(|e| e.path()));
        }
    }
    dirs
}

/// Removes what dead processes left in the project at `root`: their staging folders and
/// journals under `cache/tmp/`, and their temporary files in every folder a journal names and
/// in the store's own folders. Returns how many entries were removed. Cheap when nothing was
/// left: one folder read.
pub fn sweep(root: &Path) -> usize {
    let tmp = Layout::new(root).cache().tmp();
    if fsafe::check_dir(root, &tmp).is_err() {
        return 0;
    }
    let Ok(rd) = std::fs::read_dir(&tmp) else {
        return 0;
    };
    let entries: Vec<(String, PathBuf)> = rd
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    let journalled: HashSet<u32> = entries.iter().filter_map(|(n, _)| journal_pid(n)).collect();
    let mut n = 0;
    // A dead process's staging folder without a journal (written by an older pipe, or the
    // journal could not be written): its temporary files can be anywhere in the store.
    let mut unjournalled = false;
    for (name, path) in entries {
        if name.ends_with(".journal") {
            let Some(pid) = journal_pid(&name) else {
                continue; // another machine's
            };
            if !dead(pid) {
                continue;
            }
            let text = fsafe::read_regular(&path, 64 << 20)
                .ok()
                .flatten()
                .unwrap_or_default();
            for line in String::from_utf8_lossy(&text).lines() {
                let Ok(rel) = serde_json::from_str::<String>(line) else {
                    continue;
                };
                if crate::layout::lexically_inside(root, &root.join(&rel)) {
                    n += sweep_dir(root, &root.join(&rel));
                }
            }
        } else if let Ok(pid) = name.parse::<u32>() {
            if !dead(pid) {
                continue;
            }
            unjournalled |= !journalled.contains(&pid);
        } else if !is_stale_tmp(&name) {
            continue;
        }
        if fsafe::remove(root, &path).is_ok() {
            n += 1;
        }
    }
    if unjournalled {
        n += store_dirs(root)
            .iter()
            .map(|d| sweep_dir(root, d))
            .sum::<usize>();
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_liveness() {
        assert_eq!(tmp_pid(".ci.lock.tmp123-4"), Some(123));
        assert_eq!(tmp_pid("remote-ab.tmp9-0"), Some(9));
        assert_eq!(tmp_pid(".x.tmp12-"), None);
        assert_eq!(tmp_pid("plain.txt"), None);
        assert!(!is_stale_tmp(&format!(".x.tmp{}-0", std::process::id())));
        let n = name_beside(Path::new("/a/b.json"));
        assert!(n.to_string_lossy().starts_with("/a/.b.json.tmp"), "{n:?}");
    }

    #[test]
    fn a_dead_process_journal_leads_the_sweep_to_its_files() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        // A dead pid: the largest pid the kernel hands out is below 2^22.
        let ghost = 4_194_304 + 7;
        let tmp = Layout::new(root).cache().tmp();
        std::fs::create_dir_all(tmp.join(ghost.to_string()).join("0/out")).unwrap();
        std::fs::create_dir_all(root.join("results/p/a")).unwrap();
        std::fs::create_dir_all(root.join("pipelines")).unwrap();
        let left = [
            root.join(format!("results/p/a/.x.txt.tmp{ghost}-3")),
            root.join(format!("pipelines/.p.lock.tmp{ghost}-0")),
        ];
        let kept = [
            root.join("results/p/a/x.txt"),
            root.join(format!("pipelines/.p.lock.tmp{}-0", std::process::id())),
        ];
        for f in left.iter().chain(&kept) {
            std::fs::write(f, "x").unwrap();
        }
        std::fs::write(
            tmp.join(format!("{ghost}@{}.journal", host())),
            "\"results/p/a\"\n\"pipelines\"\n\"../outside\"\nnot json\n",
        )
        .unwrap();
        assert_eq!(sweep(root), 4);
        for f in &left {
            assert!(!f.exists(), "{f:?}");
        }
        for f in &kept {
            assert!(f.exists(), "{f:?}");
        }
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
        // Nothing left: nothing to do.
        assert_eq!(sweep(root), 0);
    }

    #[test]
    fn this_process_journals_each_folder_once_and_finishes() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let a = beside(root, &root.join("pipelines/p.lock"));
        let b = beside(root, &root.join("pipelines/q.lock"));
        assert_ne!(a, b);
        let journal = journal_path(root, std::process::id());
        let text = std::fs::read_to_string(&journal).unwrap();
        assert_eq!(text, "\"pipelines\"\n");
        finish(root);
        assert!(!journal.exists());
        // Journalled again after finishing; the end of the command removes it.
        beside(root, &root.join("cache/stat.json"));
        assert!(journal.exists());
        finish_all();
        assert!(!journal.exists());
    }
}
