//! Markers of unfinished attempts: `cache/interrupted/<id>` records that the last attempt of an
//! instance was stopped by a signal or failed, and for which fingerprint. `pipe status` says
//! "interrupted" only for the fingerprint that was interrupted (a marker never speaks for
//! parameters that did not run); the engine removes a marker once its instance completes, and
//! puts the record's log back when the instance turns out up to date (so a log never keeps an
//! old failure).

use super::Signal;
use crate::digest::Fingerprint;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How the last attempt of an instance ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// Stopped by a signal (else: failed).
    pub interrupted: bool,
    /// The fingerprint it was computing (None: it failed before its fingerprint was known).
    pub fingerprint: Option<Fingerprint>,
}

/// The id made safe as a file name (`%XX` for anything but letters, digits and `@=,+-_.`, and
/// for a leading dot).
fn file_name(stage_id: &str) -> String {
    let mut name = String::new();
    for (i, b) in stage_id.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b"@=,+-_".contains(&b) || (b == b'.' && i > 0);
        if plain {
            name.push(b as char);
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    name
}

fn dir(cache_dir: &Path) -> PathBuf {
    crate::layout::CacheLayout::at(cache_dir).interrupted()
}

/// The project root of a cache folder (links are refused below it).
fn root(cache_dir: &Path) -> &Path {
    cache_dir.parent().unwrap_or(cache_dir)
}

/// Writes the marker of `stage_id` atomically through `cache::fsafe`: a planted symlink at
/// `cache/` or `cache/interrupted` is refused, never followed.
fn write(cache_dir: &Path, stage_id: &str, text: &str) -> std::io::Result<()> {
    let path = dir(cache_dir).join(file_name(stage_id));
    Ok(crate::cache::fsafe::write_atomic(
        root(cache_dir),
        &path,
        text.as_bytes(),
    )?)
}

/// Records that `stage_id`, computing fingerprint `fp`, was stopped by `sig`.
pub fn mark(
    cache_dir: &Path,
    stage_id: &str,
    fp: &Fingerprint,
    sig: Signal,
) -> std::io::Result<()> {
    write(cache_dir, stage_id, &format!("interrupted {sig} {fp}\n"))
}

/// Records that the last attempt of `stage_id` failed (its log holds the failure).
pub fn mark_failed(
    cache_dir: &Path,
    stage_id: &str,
    fp: Option<&Fingerprint>,
) -> std::io::Result<()> {
    write(
        cache_dir,
        stage_id,
        &format!("failed {}\n", fp.map(Fingerprint::as_str).unwrap_or("-")),
    )
}

/// Removes the marker of `stage_id`; an absent marker is fine.
pub fn clear(cache_dir: &Path, stage_id: &str) -> std::io::Result<()> {
    let path = dir(cache_dir).join(file_name(stage_id));
    Ok(crate::cache::fsafe::remove(root(cache_dir), &path)?)
}

/// Every marker of a project, read with one pass over the folder.
#[derive(Debug, Default)]
pub struct Markers {
    by_name: HashMap<String, Marker>,
}

impl Markers {
    pub fn load(cache_dir: &Path) -> Markers {
        let mut by_name = HashMap::new();
        let Ok(rd) = std::fs::read_dir(dir(cache_dir)) else {
            return Markers::default();
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !e.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            // A marker is one short line: a planted FIFO or huge file is no marker.
            let bytes = crate::cache::fsafe::read_regular(&e.path(), 4096)
                .ok()
                .flatten()
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            let words: Vec<&str> = text.split_whitespace().collect();
            let marker = match words.as_slice() {
                ["interrupted", _, fp] => Marker {
                    interrupted: true,
                    fingerprint: Fingerprint::parse(fp).ok(),
                },
                ["failed", fp] => Marker {
                    interrupted: false,
                    fingerprint: Fingerprint::parse(fp).ok(),
                },
                _ => continue,
            };
            by_name.insert(name, marker);
        }
        Markers { by_name }
    }

    /// The marker of an instance, if its last attempt did not complete.
    pub fn get(&self, stage_id: &str) -> Option<&Marker> {
        if self.by_name.is_empty() {
            return None;
        }
        self.by_name.get(&file_name(stage_id))
    }

    /// Whether `stage_id` was interrupted while computing fingerprint `fp`.
    pub fn interrupted(&self, stage_id: &str, fp: &Fingerprint) -> bool {
        self.get(stage_id)
            .is_some_and(|m| m.interrupted && m.fingerprint.as_ref() == Some(fp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Fingerprint;
    use crate::interrupt::Signal;

    #[test]
    fn markers_round_trip_and_ids_stay_inside_the_folder() {
        let (f1, f2) = (Fingerprint::of(b"1"), Fingerprint::of(b"2"));
        let d = tempfile::tempdir().unwrap();
        let cache = d.path().join("cache");
        for id in [
            "train@epoch=2",
            "s@p=x/../../victim",
            "..",
            ".hidden",
            "a\nb",
        ] {
            assert!(Markers::load(&cache).get(id).is_none());
            mark(&cache, id, &f1, Signal::Int).unwrap();
            let m = Markers::load(&cache);
            assert!(m.interrupted(id, &f1), "{id}");
            assert!(!m.interrupted(id, &f2), "{id}: another fingerprint");
            let p = dir(&cache).join(file_name(id));
            assert_eq!(p.parent().unwrap(), cache.join("interrupted"), "{id}");
            assert!(!file_name(id).starts_with('.'));
            mark_failed(&cache, id, None).unwrap();
            let m = Markers::load(&cache);
            assert_eq!(
                m.get(id),
                Some(&Marker {
                    interrupted: false,
                    fingerprint: None
                })
            );
            assert!(!m.interrupted(id, &f1));
            clear(&cache, id).unwrap();
            assert!(Markers::load(&cache).get(id).is_none());
            clear(&cache, id).unwrap();
        }
        // Only the markers' folder was created, nothing outside it.
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);
        assert_eq!(std::fs::read_dir(dir(&cache)).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_is_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let cache = d.path().join("cache");
        std::fs::create_dir_all(&cache).unwrap();
        std::os::unix::fs::symlink(&outside, cache.join("interrupted")).unwrap();
        let f = Fingerprint::of(b"f");
        assert!(mark(&cache, "a", &f, Signal::Term).is_err());
        assert!(mark_failed(&cache, "a", Some(&f)).is_err());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }
}
