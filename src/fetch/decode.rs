//! decode (sans-IO part of fetch; in progress).
