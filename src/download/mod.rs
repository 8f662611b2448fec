//! Obtaining input files: HTTP downloads with resume and a byte limit (`http`), mirror folders
//! searched by checksum (`mirror`), the two with the download cache behind one call (`obtain`), and the names and places of downloads kept in `cache/`.
//! Knows nothing of stages; the `fetch` stage kind is glue over it.

mod http;
mod mirror;
mod obtain;

pub use http::{download, DownloadError};
pub use mirror::{find_in_mirrors, mirror_dirs, MIRROR_ENV};
pub use obtain::{obtain, ObtainError, Request};

use std::path::{Path, PathBuf};

/// The file name a URL names (last path segment, without query; unsafe characters replaced).
pub fn url_file_name(url: &str) -> String {
    let no_q = url.split(['?', '#']).next().unwrap_or(url);
    let after_scheme = no_q.split_once("://").map(|x| x.1).unwrap_or(no_q);
    let last = after_scheme
        .split_once('/')
        .map(|(_, p)| p.rsplit('/').next().unwrap_or(""))
        .unwrap_or("");
    let clean: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() || clean.chars().all(|c| c == '.') {
        "download".into()
    } else {
        clean
    }
}

/// Where a verified download of (url, bytes, blake3) is kept; the partial file adds `.part`.
pub fn download_cache_path(
    cache_dir: &Path,
    url: &str,
    bytes: Option<u64>,
    blake3: Option<&str>,
) -> PathBuf {
    let key = match blake3 {
        Some(h) => h.to_ascii_lowercase()[..16].to_string(),
        None => {
            let mut h = blake3::Hasher::new();
            h.update(url.as_bytes());
            h.update(&[0]);
            h.update(&bytes.unwrap_or(u64::MAX).to_le_bytes());
            h.finalize().to_hex()[..16].to_string()
        }
    };
    crate::layout::CacheLayout::at(cache_dir)
        .downloads()
        .join(format!("{key}-{}", url_file_name(url)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_from_urls() {
        assert_eq!(
            url_file_name("https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/TinyStories-train.txt?download=1"),
            "TinyStories-train.txt"
        );
        assert_eq!(url_file_name("http://host"), "download");
        assert_eq!(url_file_name("http://host/"), "download");
        assert_eq!(url_file_name("http://h/a b%20.txt"), "a_b_20.txt");
    }
}
