//! Planning: for each stage, fresh or run with a Reason (scaffold: to be implemented).
