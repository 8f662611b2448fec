//! Asking a remote what it has: key by key (a stat or a HEAD each) when only a few keys
//! matter, so that the cost of a push or a pull does not grow with the size of the remote, and
//! one listing when many do. Also the small thread pool transfers run on.

use super::{object_key, record_key, Remote, Result};
use crate::digest::{Blake3, Fingerprint};
use std::collections::{BTreeMap, BTreeSet};

/// How many requests run at once.
const THREADS: usize = 4;

/// Up to this many keys are asked about one by one; more, and one listing answers for all.
pub const PER_KEY_MAX: usize = 64;

/// Runs `f` on every item on a few threads; results in item order.
pub(crate) fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = THREADS.min(items.len()).max(1);
    let mut slots: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    let results = std::sync::Mutex::new(&mut slots);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= items.len() {
                    break;
                }
                let r = f(&items[i]);
                results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
            });
        }
    });
    slots.into_iter().flatten().collect()
}

/// The sizes of those of `hashes` the remote has (absent ones left out).
pub fn object_sizes(remote: &Remote, hashes: &[Blake3]) -> Result<BTreeMap<Blake3, u64>> {
    if hashes.len() > PER_KEY_MAX {
        let all = remote.list_objects()?;
        return Ok(hashes
            .iter()
            .filter_map(|h| all.get(h).map(|n| (*h, *n)))
            .collect());
    }
    let sizes = parallel(hashes, |h| remote.size(&object_key(h)));
    let mut out = BTreeMap::new();
    for (h, r) in hashes.iter().zip(sizes) {
        if let Some(n) = r? {
            out.insert(*h, n);
        }
    }
    Ok(out)
}

/// Those of `fps` the remote has a run record of.
pub fn records_present(remote: &Remote, fps: &[Fingerprint]) -> Result<BTreeSet<Fingerprint>> {
    if fps.len() > PER_KEY_MAX {
        let all: BTreeSet<Fingerprint> = remote.list_records()?.into_iter().collect();
        return Ok(fps.iter().filter(|f| all.contains(f)).copied().collect());
    }
    let sizes = parallel(fps, |fp| remote.size(&record_key(fp)));
    let mut out = BTreeSet::new();
    for (fp, r) in fps.iter().zip(sizes) {
        if r?.is_some() {
            out.insert(*fp);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::folder::FolderRemote;

    #[test]
    fn per_key_and_listing_answers_agree() {
        let d = tempfile::tempdir().unwrap();
        let remote = Remote::Folder(FolderRemote::new(d.path().to_path_buf()));
        let hashes: Vec<Blake3> = (0..PER_KEY_MAX as u32 + 6)
            .map(|i| Blake3::of(&i.to_le_bytes()))
            .collect();
        for (i, h) in hashes.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
            remote.put_bytes(&object_key(h), &vec![1u8; i]).unwrap();
        }
        let listed = object_sizes(&remote, &hashes).unwrap();
        let few = &hashes[..PER_KEY_MAX];
        let asked = object_sizes(&remote, few).unwrap();
        assert_eq!(listed.len(), hashes.len().div_ceil(3));
        for (h, n) in &asked {
            assert_eq!(listed.get(h), Some(n));
        }
        assert_eq!(asked.len(), few.len().div_ceil(3));
        assert_eq!(asked.get(&hashes[3]), Some(&3));
        let fps: Vec<Fingerprint> = (0..3u8).map(|i| Fingerprint::of(&[i])).collect();
        remote.put_bytes(&record_key(&fps[1]), b"{}").unwrap();
        let present = records_present(&remote, &fps).unwrap();
        assert_eq!(present.into_iter().collect::<Vec<_>>(), vec![fps[1]]);
    }
}
