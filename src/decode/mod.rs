//! decode (scaffold: to be implemented).
