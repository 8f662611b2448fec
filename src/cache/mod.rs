//! cache (scaffold: to be implemented).
