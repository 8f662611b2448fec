//! metrics (scaffold: to be implemented).
