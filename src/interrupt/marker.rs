//! The "interrupted" markers: `cache/interrupted/<id>` records that a stage was stopped by a
//! signal, so that `pipe status` says "interrupted" rather than "new stage".

use super::Signal;
use std::path::{Path, PathBuf};

/// `cache/interrupted/<id>`, the id made safe as a file name (`%XX` for anything but
/// letters, digits and `@=,+-_.`, and for a leading dot).
fn marker_path(cache_dir: &Path, stage_id: &str) -> PathBuf {
    let mut name = String::new();
    for (i, b) in stage_id.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b"@=,+-_".contains(&b) || (b == b'.' && i > 0);
        if plain {
            name.push(b as char);
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    crate::layout::CacheLayout::at(cache_dir)
        .interrupted()
        .join(name)
}

/// Records that stage `stage_id` was stopped by `sig`, for `pipe status`. Written atomically;
/// a planted symlink at `cache/interrupted` is refused, never followed.
pub fn mark(cache_dir: &Path, stage_id: &str, sig: Signal) -> std::io::Result<()> {
    let path = marker_path(cache_dir, stage_id);
    let dir = path.parent().expect("marker paths have a parent");
    match std::fs::symlink_metadata(dir) {
        Ok(m) if !m.is_dir() => {
            return Err(std::io::Error::other(format!(
            "{} is not a folder (a symlink or a file): refusing to write interrupted markers there",
            dir.display()
        )))
        }
        Ok(_) => {}
        Err(_) => std::fs::create_dir_all(dir)?,
    }
    let tmp = dir.join(format!(".tmp{}", std::process::id()));
    std::fs::write(&tmp, format!("interrupted by {sig}\n"))?;
    std::fs::rename(&tmp, &path)
}

/// Whether `stage_id` was interrupted since its last completed run.
pub fn was_interrupted(cache_dir: &Path, stage_id: &str) -> bool {
    std::fs::symlink_metadata(marker_path(cache_dir, stage_id)).is_ok()
}

/// Removes the marker of `stage_id` (after it completes); absent markers are fine.
pub fn clear(cache_dir: &Path, stage_id: &str) -> std::io::Result<()> {
    match std::fs::remove_file(marker_path(cache_dir, stage_id)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interrupt::Signal;

    #[test]
    fn markers_round_trip_and_ids_stay_inside_the_folder() {
        let d = tempfile::tempdir().unwrap();
        let cache = d.path().join("cache");
        for id in [
            "train@epoch=2",
            "s@p=x/../../victim",
            "..",
            ".hidden",
            "a\nb",
        ] {
            assert!(!was_interrupted(&cache, id));
            mark(&cache, id, Signal::Int).unwrap();
            assert!(was_interrupted(&cache, id), "{id}");
            let p = marker_path(&cache, id);
            assert_eq!(p.parent().unwrap(), cache.join("interrupted"), "{id}");
            assert!(!p.file_name().unwrap().to_string_lossy().starts_with('.'));
            clear(&cache, id).unwrap();
            assert!(!was_interrupted(&cache, id));
            clear(&cache, id).unwrap();
        }
        // Only the markers' folder was created, nothing outside it.
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);
        assert_eq!(
            std::fs::read_dir(cache.join("interrupted"))
                .unwrap()
                .count(),
            0
        );
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
        assert!(mark(&cache, "a", Signal::Term).is_err());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }
}
