//! The scheduler: runs ready stages in parallel (scaffold: to be implemented).
