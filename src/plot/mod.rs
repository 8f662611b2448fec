//! plot (scaffold: to be implemented).
