//! Push from the local store to a remote: objects before the records that refer to them, and
//! the log each record names, in parallel. What the remote already has is skipped when its
//! size is right, and replaced when it is not (a truncated upload, a damaged copy); with
//! `verify` every object the remote has is also re-hashed, and every record it has validated.
//! Only the keys a push needs are asked about, unless there are many (then one listing).

use super::query::{object_sizes, parallel, records_present};
use super::sync::{bar, record_log, record_objects, Pending, Transfer};
use super::{object_key, record_key, Remote, Result};
use crate::cache::Cache;
use crate::digest::{Blake3, Fingerprint};
use std::collections::BTreeMap;

/// Uploads the records of `fps` and every object they need (and their logs), objects first:
/// a record is sent only once all its objects are on the remote, so a half-finished push never
/// leaves a record pointing at nothing. Remote objects of the wrong size are replaced.
pub fn push(cache: &Cache, fps: &[Fingerprint], remote: &Remote) -> Result<Transfer> {
    push_with(cache, fps, remote, false)
}

/// [`push`]; with `verify`, remote objects whose content does not hash to their name and
/// invalid remote records are replaced too (`pipe push --verify`).
pub fn push_with(
    cache: &Cache,
    fps: &[Fingerprint],
    remote: &Remote,
    verify: bool,
) -> Result<Transfer> {
    let mut t = Transfer::default();
    let records = local_records(cache, fps, &mut t);
    // Every object to be on the remote, with its size here: those the records need, and the
    // logs the local store has.
    let mut local: BTreeMap<Blake3, u64> = BTreeMap::new();
    for (_, bytes, objs) in &records {
        for (h, _) in objs
            .iter()
            .copied()
            .chain(record_log(bytes).map(|h| (h, 0)))
        {
            if let Ok(m) = std::fs::metadata(cache.object_path(&h)) {
                local.insert(h, m.len());
            }
        }
    }
    let want = objects_to_send(remote, &local, verify, &mut t)?;
    t.objects_skipped = local.len() - want.len();
    let pb = bar(want.iter().map(|x| x.1).sum(), "push");
    let results = parallel(&want, |(h, _)| remote.put_object(cache, h, &|n| pb.inc(n)));
    pb.finish_and_clear();
    for ((_, n), r) in want.iter().zip(results) {
        r?;
        t.objects += 1;
        t.bytes += n;
    }
    send_records(cache, remote, &records, verify, &mut t)?;
    Ok(t)
}

/// The valid local records of `fps` whose objects are all here; the others are reported in
/// `t` (an invalid record is quarantined with a warning and never leaves the store).
fn local_records(cache: &Cache, fps: &[Fingerprint], t: &mut Transfer) -> Vec<Pending> {
    let mut records = Vec::new();
    for fp in fps {
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
    records
}

/// Which of the `local` objects (hash → size here) the remote lacks or holds wrongly: a
/// different size, or with `verify` content that does not hash to its name.
fn objects_to_send(
    remote: &Remote,
    local: &BTreeMap<Blake3, u64>,
    verify: bool,
    t: &mut Transfer,
) -> Result<Vec<(Blake3, u64)>> {
    let hashes: Vec<Blake3> = local.keys().copied().collect();
    let have = object_sizes(remote, &hashes)?;
    let mut want = Vec::new();
    let mut check = Vec::new();
    for (h, n) in local {
        match have.get(h) {
            None => want.push((*h, *n)),
            Some(m) if m != n => {
                t.repaired.push(format!(
                    "{}: {m} bytes on the remote, {n} here",
                    object_key(h)
                ));
                want.push((*h, *n));
            }
            Some(_) if verify => check.push((*h, *n)),
            Some(_) => {}
        }
    }
    let hashed = parallel(&check, |(h, _)| remote.hash(&object_key(h)));
    t.verified += check.len();
    for ((h, n), r) in check.into_iter().zip(hashed) {
        match r? {
            Some((got, _)) if got == h => {}
            Some((got, _)) => {
                t.repaired.push(format!(
                    "{}: its content hashes to {}",
                    object_key(&h),
                    got.short()
                ));
                want.push((h, n));
            }
            None => want.push((h, n)),
        }
    }
    Ok(want)
}

/// Sends the records the remote lacks; with `verify`, also replaces those it has that are not
/// valid records of their fingerprint. (A valid remote record is kept even when its bytes
/// differ: another machine's run of the same fingerprint has its own timings and log.)
fn send_records(
    cache: &Cache,
    remote: &Remote,
    records: &[Pending],
    verify: bool,
    t: &mut Transfer,
) -> Result<()> {
    let fps: Vec<Fingerprint> = records.iter().map(|r| r.0).collect();
    let have = records_present(remote, &fps)?;
    for (fp, bytes, _) in records {
        if have.contains(fp) {
            if !verify {
                t.records_skipped += 1;
                continue;
            }
            match super::fetch_record(remote, cache, fp) {
                Ok(Some(_)) => {
                    t.records_skipped += 1;
                    continue;
                }
                Ok(None) => {}
                Err(e) if e.is_corrupt() => t.repaired.push(e.to_string()),
                Err(e) => return Err(e),
            }
        }
        remote.put_bytes(&record_key(fp), bytes)?;
        t.records += 1;
        t.bytes += bytes.len() as u64;
    }
    Ok(())
}
