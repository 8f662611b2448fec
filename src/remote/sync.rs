//! Push and pull between the local store and a remote: objects before the records that refer
//! to them, in parallel, skipping what the other side has, verifying every download. Also the
//! per-fingerprint functions the engine calls for `run --pull`.

use super::{record_key, Remote, RemoteError, Result};
use crate::cache::lockfile::LockFile;
use crate::cache::store::AdmitError;
use crate::cache::trust::MAX_RECORD_BYTES;
use crate::cache::{Cache, RunRecord};
use crate::digest::{Blake3, Fingerprint};
use std::collections::{BTreeMap, BTreeSet};

/// How many transfers run at once.
const THREADS: usize = 4;
/// Transfers at least this large show a progress bar (on a terminal).
const BAR_BYTES: u64 = 16 << 20;

/// What a push or pull did.
#[derive(Debug, Default, Clone)]
pub struct Transfer {
    /// Records sent (push) or written locally (pull).
    pub records: usize,
    /// Records the other side already had.
    pub records_skipped: usize,
    pub objects: usize,
    pub objects_skipped: usize,
    pub bytes: u64,
    /// Fingerprints with no record on the source side.
    pub missing: Vec<Fingerprint>,
    /// Fingerprints whose record was not transferred because an object it needs is missing
    /// or corrupt.
    pub incomplete: Vec<Fingerprint>,
    /// Corrupt remote objects or records (messages naming the key), treated as missing.
    pub corrupt: Vec<String>,
}

/// A record in transit: fingerprint, bytes, the objects it needs with their sizes.
type Pending = (Fingerprint, Vec<u8>, Vec<(Blake3, u64)>);

/// What [`fetch_objects`] did.
#[derive(Debug, Default, Clone)]
pub struct FetchReport {
    pub fetched: usize,
    pub bytes: u64,
    /// Hashes the remote does not have.
    pub missing: Vec<Blake3>,
    /// Corrupt remote objects (messages naming the key): not stored, treated as missing.
    pub corrupt: Vec<String>,
}

/// The distinct fingerprints a lock file references.
pub fn lock_fingerprints(lock: &LockFile) -> Vec<Fingerprint> {
    let set: BTreeSet<Fingerprint> = lock.stages.values().map(|e| e.fingerprint).collect();
    set.into_iter().collect()
}

/// Every store object a run record needs, with its size: the `blake3` of each entry of each
/// top-level list of the record (`outputs`, and any list a later record format adds).
/// `None` when the bytes are not a record, or an entry's `blake3` is not a hash.
pub fn record_objects(record: &[u8]) -> Option<Vec<(Blake3, u64)>> {
    let v: serde_json::Value = serde_json::from_slice(record).ok()?;
    let obj = v.as_object()?;
    let mut out = BTreeMap::new();
    for list in obj.values().filter_map(|x| x.as_array()) {
        for e in list {
            if let Some(h) = e.get("blake3") {
                let h = Blake3::parse(h.as_str()?).ok()?;
                let n = e.get("size").and_then(|s| s.as_u64()).unwrap_or(0);
                out.insert(h, n);
            }
        }
    }
    Some(out.into_iter().collect())
}

/// The run record of `fp` on the remote, validated as the local store validates records
/// (`cache::trust`: bounded, filed under the fingerprint it names, outputs inside what its
/// stage owns): the record and its bytes; `Ok(None)` when the remote has none, an error that
/// `is_corrupt` (naming the key) when it is not a valid record for `fp`.
pub fn fetch_record(
    remote: &Remote,
    cache: &Cache,
    fp: &Fingerprint,
) -> Result<Option<(RunRecord, Vec<u8>)>> {
    let key = record_key(fp);
    let Some(bytes) = remote.get_bytes(&key, MAX_RECORD_BYTES)? else {
        return Ok(None);
    };
    let bad = |why: String| RemoteError::BadRecord {
        key: format!("{}/{key}", remote.describe().trim_end_matches('/')),
        why,
    };
    let rec = cache.validate(fp, &bytes).map_err(|e| bad(e.to_string()))?;
    record_objects(&bytes).ok_or_else(|| bad("a listed hash is not a blake3 hash".into()))?;
    Ok(Some((rec, bytes)))
}

/// A progress bar over `total` bytes, drawn only for large transfers.
fn bar(total: u64, what: &str) -> indicatif::ProgressBar {
    if total < BAR_BYTES {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb
}

/// Runs `f` on every item on a few threads; results in item order.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
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

/// Downloads those of `hashes` that the local store lacks, verifying each by blake3 before it
/// enters the store. Missing and corrupt remote objects are reported, not errors; a remote
/// that cannot be used (credentials, network) is an error.
pub fn fetch_objects(remote: &Remote, hashes: &[Blake3], cache: &Cache) -> Result<FetchReport> {
    let want: Vec<&Blake3> = hashes
        .iter()
        .filter(|h| !cache.object_path(h).is_file())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut rep = FetchReport::default();
    if want.is_empty() {
        return Ok(rep);
    }
    // sizes from the listing size the progress bar; one listing beats a HEAD per object
    let sizes = if want.len() > 1 {
        remote.list_objects()?
    } else {
        BTreeMap::new()
    };
    let total: u64 = want.iter().filter_map(|h| sizes.get(*h)).sum();
    let pb = bar(total, "pull");
    let results = parallel(&want, |h| remote.get_object(cache, h, &|n| pb.inc(n)));
    pb.finish_and_clear();
    for (h, r) in want.iter().zip(results) {
        match r {
            Ok(Some(n)) => {
                rep.fetched += 1;
                rep.bytes += n;
            }
            Ok(None) => rep.missing.push(**h),
            Err(e) if e.is_corrupt() => rep.corrupt.push(e.to_string()),
            Err(e) => return Err(e),
        }
    }
    Ok(rep)
}

/// Uploads the records of `fps` and every object they need, objects first: a record is sent
/// only once all its objects are on the remote, so a half-finished push never leaves a record
/// pointing at nothing. What the remote already has is skipped.
pub fn push(cache: &Cache, fps: &[Fingerprint], remote: &Remote) -> Result<Transfer> {
    let mut t = Transfer::default();
    let mut records: Vec<Pending> = Vec::new();
    for fp in fps {
        // Only valid records leave the store (an invalid one is quarantined with a warning).
        let Some(bytes) = cache.record_bytes(fp) else {
            t.missing.push(*fp);
            continue;
        };
        let Some(objs) = record_objects(&bytes) else {
            t.missing.push(*fp);
            continue;
        };
        if objs.iter().any(|(h, _)| !cache.object_path(h).is_file()) {
            t.incomplete.push(*fp);
            continue;
        }
        records.push((*fp, bytes, objs));
    }
    let have = remote.list_objects()?;
    let mut want: BTreeMap<Blake3, u64> = BTreeMap::new();
    for (_, _, objs) in &records {
        for (h, n) in objs {
            if have.contains_key(h) {
                continue;
            }
            want.insert(*h, *n);
        }
    }
    let all: BTreeSet<&Blake3> = records
        .iter()
        .flat_map(|r| r.2.iter().map(|o| &o.0))
        .collect();
    t.objects_skipped = all.len() - want.len();
    let list: Vec<(Blake3, u64)> = want.into_iter().collect();
    let pb = bar(list.iter().map(|x| x.1).sum(), "push");
    let results = parallel(&list, |(h, _)| remote.put_object(cache, h, &|n| pb.inc(n)));
    pb.finish_and_clear();
    for ((_, n), r) in list.iter().zip(results) {
        r?;
        t.objects += 1;
        t.bytes += n;
    }
    let have_records: BTreeSet<Fingerprint> = remote.list_records()?.into_iter().collect();
    for (fp, bytes, _) in &records {
        if have_records.contains(fp) {
            t.records_skipped += 1;
            continue;
        }
        remote.put_bytes(&record_key(fp), bytes)?;
        t.records += 1;
        t.bytes += bytes.len() as u64;
    }
    Ok(t)
}

/// Downloads the records of `fps` that the local store lacks and every object they need that
/// is missing locally. A record is written (atomically) only once all its objects are in the
/// local store; corrupt remote objects are reported and not used.
pub fn pull(cache: &Cache, fps: &[Fingerprint], remote: &Remote) -> Result<Transfer> {
    let mut t = Transfer::default();
    let mut fetched: Vec<Pending> = Vec::new();
    let mut needed: BTreeSet<Blake3> = BTreeSet::new();
    for fp in fps {
        // A valid local record is kept (an invalid one is quarantined and pulled again).
        if let Some(bytes) = cache.record_bytes(fp) {
            needed.extend(
                record_objects(&bytes)
                    .unwrap_or_default()
                    .iter()
                    .map(|o| o.0),
            );
            t.records_skipped += 1;
            continue;
        }
        match fetch_record(remote, cache, fp) {
            Ok(Some((_, bytes))) => {
                let objs = record_objects(&bytes).unwrap_or_default();
                needed.extend(objs.iter().map(|o| o.0));
                fetched.push((*fp, bytes, objs));
            }
            Ok(None) => t.missing.push(*fp),
            Err(e) if e.is_corrupt() => {
                t.corrupt.push(e.to_string());
                t.missing.push(*fp);
            }
            Err(e) => return Err(e),
        }
    }
    let needed: Vec<Blake3> = needed.into_iter().collect();
    let missing_before = needed
        .iter()
        .filter(|h| !cache.object_path(h).is_file())
        .count();
    let rep = fetch_objects(remote, &needed, cache)?;
    t.objects = rep.fetched;
    t.objects_skipped = needed.len() - missing_before;
    t.bytes = rep.bytes;
    t.corrupt.extend(rep.corrupt);
    for (fp, bytes, objs) in fetched {
        if !objs.iter().all(|(h, _)| cache.object_path(h).is_file()) {
            t.incomplete.push(fp);
            continue;
        }
        match cache.admit_record(&fp, &bytes) {
            Ok(_) => {
                t.records += 1;
                t.bytes += bytes.len() as u64;
            }
            Err(AdmitError::Invalid(e)) => {
                t.corrupt.push(format!("run record {fp}: {e}"));
                t.missing.push(fp);
            }
            Err(AdmitError::Io(e)) => return Err(e.into()),
        }
    }
    Ok(t)
}
