//! graph (scaffold: to be implemented).
