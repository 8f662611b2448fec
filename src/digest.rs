//! Checked content hashes: [`Blake3`] (the hash of a file's bytes, naming a store object) and
//! [`Fingerprint`] (the hash of a stage instance's fingerprint key, naming a run record). Both
//! are exactly 64 lowercase hex digits, checked when parsed and at deserialisation, so that no
//! path is ever built from an unchecked string: `"a"`, `""`, `"../.."` or `"..//etc/passwd"`
//! in a record, a lock file or the stat cache is refused before anything acts on it.

use std::fmt;

/// Hex digits in a blake3 hash.
pub const HEX_LEN: usize = 64;

/// A string that is not a 64-digit lowercase hex hash. The offending value is shown escaped
/// and cut to a bounded length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{shown}` is not a blake3 hash (64 lowercase hex digits)")]
pub struct HashError {
    /// `blake3` or `fingerprint`.
    pub what: &'static str,
    /// The value, escaped and cut to 80 characters.
    pub shown: String,
}

fn check(what: &'static str, s: &str) -> Result<[u8; HEX_LEN], HashError> {
    let ok = s.len() == HEX_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !ok {
        let mut shown: String = s.escape_debug().take(80).collect();
        if s.escape_debug().nth(80).is_some() {
            shown.push('…');
        }
        return Err(HashError { what, shown });
    }
    let mut hex = [0u8; HEX_LEN];
    hex.copy_from_slice(s.as_bytes());
    Ok(hex)
}

macro_rules! hash_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "std::borrow::Cow<'_, str>", into = "String")]
        pub struct $name([u8; HEX_LEN]);

        impl $name {
            /// Parses 64 lowercase hex digits; anything else is a [`HashError`].
            pub fn parse(s: &str) -> Result<Self, HashError> {
                check($what, s).map($name)
            }

            /// The 64 hex digits.
            pub fn as_str(&self) -> &str {
                // Only ASCII hex digits are ever stored (checked by `parse`, or from `to_hex`).
                std::str::from_utf8(&self.0).expect("a checked hash is ASCII")
            }

            /// The first 12 hex digits, for messages.
            pub fn short(&self) -> &str {
                &self.as_str()[..12]
            }
        }

        impl From<blake3::Hash> for $name {
            fn from(h: blake3::Hash) -> Self {
                let hex = h.to_hex();
                let mut out = [0u8; HEX_LEN];
                out.copy_from_slice(hex.as_bytes());
                $name(out)
            }
        }

        impl std::str::FromStr for $name {
            type Err = HashError;
            fn from_str(s: &str) -> Result<Self, HashError> {
                $name::parse(s)
            }
        }

        impl TryFrom<std::borrow::Cow<'_, str>> for $name {
            type Error = HashError;
            fn try_from(s: std::borrow::Cow<'_, str>) -> Result<Self, HashError> {
                $name::parse(&s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = HashError;
            fn try_from(s: &str) -> Result<Self, HashError> {
                $name::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(h: $name) -> String {
                h.as_str().to_string()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.as_str())
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

hash_type!(
    /// The blake3 hash of a file's content: the name of a store object.
    Blake3,
    "blake3"
);

hash_type!(
    /// The fingerprint of a stage instance (the blake3 of its canonical fingerprint key): the
    /// name of a run record.
    Fingerprint,
    "fingerprint"
);

impl Blake3 {
    /// The hash of some bytes.
    pub fn of(bytes: &[u8]) -> Blake3 {
        blake3::hash(bytes).into()
    }

    /// The two leading hex digits (the object's folder) and the other 62 (its file name).
    pub fn split(&self) -> (&str, &str) {
        self.as_str().split_at(2)
    }
}

impl Fingerprint {
    /// The fingerprint of some canonical key bytes.
    pub fn of(bytes: &[u8]) -> Fingerprint {
        blake3::hash(bytes).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_64_lowercase_hex_digits_parse() {
        let good = "0123456789abcdef".repeat(4);
        assert_eq!(Blake3::parse(&good).unwrap().as_str(), good);
        assert_eq!(Fingerprint::parse(&good).unwrap().short(), &good[..12]);
        let long = "a".repeat(10_000);
        for bad in [
            "",
            "a",
            "../..",
            "..//etc/passwd",
            "../srv/data/file.txt",
            &"A".repeat(64),
            &"g".repeat(64),
            &"a".repeat(63),
            &"a".repeat(65),
            &format!("{}/", "a".repeat(63)),
            &format!("{}\0", "a".repeat(63)),
            &long,
        ] {
            let e = Blake3::parse(bad).unwrap_err();
            assert!(e.shown.chars().count() <= 81, "{e}");
            assert!(e.to_string().contains("blake3"), "{e}");
        }
    }

    #[test]
    fn serde_checks_at_deserialisation_and_keeps_the_string_form() {
        let h = Blake3::of(b"x");
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, format!("\"{}\"", blake3::hash(b"x").to_hex()));
        assert_eq!(serde_json::from_str::<Blake3>(&json).unwrap(), h);
        for bad in ["\"\"", "\"../..\"", "\"a\"", "7", "null"] {
            assert!(serde_json::from_str::<Blake3>(bad).is_err(), "{bad}");
        }
        // Escaped JSON strings (owned on deserialisation) are checked too.
        let escaped = format!("\"\\u0030{}\"", &h.as_str()[1..]);
        assert!(serde_json::from_str::<Fingerprint>(&escaped).is_ok());
        let (dir, file) = h.split();
        assert_eq!((dir.len(), file.len()), (2, 62));
    }
}
