//! Pull from a remote into the local store: records validated, then the objects they need and
//! the logs they name, in parallel, skipping what the local store has, verifying every
//! download; a record enters the store only once its objects are there. Also what push and
//! pull share (the transfer report, what a record needs) and the per-fingerprint functions the
//! engine calls for `run --pull`. Pushing is in [`super::push`].

use super::query::parallel;
use super::{record_key, Remote, RemoteError, Result};
use crate::cache::lockfile::LockFile;
use crate::cache::store::AdmitError;
use crate::cache::trust::MAX_RECORD_BYTES;
use crate::cache::{Cache, RunRecord};
use crate::digest::{Blake3, Fingerprint};
use std::collections::{BTreeMap, BTreeSet};

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
    /// Remote objects or records a push replaced (messages naming the key and what was wrong).
    pub repaired: Vec<String>,
    /// Remote objects a push re-hashed (`--verify`).
    pub verified: usize,
}

/// A record in transit: fingerprint, bytes, the objects it needs with their sizes.
pub(crate) type Pending = (Fingerprint, Vec<u8>, Vec<(Blake3, u64)>);

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

/// The log object a record names (`log`): it travels with the record when the store has it,
/// but a record never waits for it.
pub fn record_log(record: &[u8]) -> Option<Blake3> {
    let v: serde_json::Value = serde_json::from_slice(record).ok()?;
    Blake3::parse(v.get("log")?.as_str()?).ok()
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
pub(crate) fn bar(total: u64, what: &str) -> indicatif::ProgressBar {
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

/// Downloads those of `hashes` that the local store lacks, verifying each by blake3 before it
/// enters the store. Missing and corrupt remote objects are reported, not errors; a remote
/// that cannot be used (credentials, network) is an error. Only these keys are asked for: the
/// remote is never listed.
pub fn fetch_objects(remote: &Remote, hashes: &[Blake3], cache: &Cache) -> Result<FetchReport> {
    let sized: Vec<(Blake3, u64)> = hashes.iter().map(|h| (*h, 0)).collect();
    fetch_sized(remote, &sized, cache)
}

/// [`fetch_objects`] with each object's expected size (from its record), for the progress bar.
fn fetch_sized(remote: &Remote, hashes: &[(Blake3, u64)], cache: &Cache) -> Result<FetchReport> {
    let want: Vec<(Blake3, u64)> = hashes
        .iter()
        .filter(|(h, _)| !cache.object_path(h).is_file())
        .copied()
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .collect();
    let mut rep = FetchReport::default();
    if want.is_empty() {
        return Ok(rep);
    }
    let pb = bar(want.iter().map(|w| w.1).sum(), "pull");
    let results = parallel(&want, |(h, _)| remote.get_object(cache, h, &|n| pb.inc(n)));
    pb.finish_and_clear();
    for ((h, _), r) in want.iter().zip(results) {
        match r {
            Ok(Some(n)) => {
                rep.fetched += 1;
                rep.bytes += n;
            }
            Ok(None) => rep.missing.push(*h),
            Err(e) if e.is_corrupt() => rep.corrupt.push(e.to_string()),
            Err(e) => return Err(e),
        }
    }
    Ok(rep)
}

/// Downloads the records of `fps` that the local store lacks, every object they need that is
/// missing locally, and the logs they name (a log the remote lacks is no failure). A record is
/// written (atomically) only once all its objects are in the local store; corrupt remote
/// objects are reported and not used. Only the keys needed are asked for.
pub fn pull(cache: &Cache, fps: &[Fingerprint], remote: &Remote) -> Result<Transfer> {
    let mut t = Transfer::default();
    let mut fetched: Vec<Pending> = Vec::new();
    let mut needed: BTreeMap<Blake3, u64> = BTreeMap::new();
    let mut logs: BTreeSet<Blake3> = BTreeSet::new();
    for fp in fps {
        // A valid local record is kept (an invalid one is quarantined and pulled again).
        let bytes = if let Some(bytes) = cache.record_bytes(fp) {
            t.records_skipped += 1;
            bytes
        } else {
            match fetch_record(remote, cache, fp) {
                Ok(Some((_, bytes))) => {
                    let objs = record_objects(&bytes).unwrap_or_default();
                    fetched.push((*fp, bytes.clone(), objs));
                    bytes
                }
                Ok(None) => {
                    t.missing.push(*fp);
                    continue;
                }
                Err(e) if e.is_corrupt() => {
                    t.corrupt.push(e.to_string());
                    t.missing.push(*fp);
                    continue;
                }
                Err(e) => return Err(e),
            }
        };
        needed.extend(record_objects(&bytes).unwrap_or_default());
        logs.extend(record_log(&bytes));
    }
    let logs: Vec<Blake3> = logs
        .into_iter()
        .filter(|h| !needed.contains_key(h))
        .collect();
    let all: Vec<(Blake3, u64)> = needed
        .iter()
        .map(|(h, n)| (*h, *n))
        .chain(logs.iter().map(|h| (*h, 0)))
        .collect();
    let missing_before = all
        .iter()
        .filter(|(h, _)| !cache.object_path(h).is_file())
        .count();
    let rep = fetch_sized(remote, &all, cache)?;
    t.objects = rep.fetched;
    t.objects_skipped = all.len() - missing_before;
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
