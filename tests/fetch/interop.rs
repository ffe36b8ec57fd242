//! Interop tests against nginx (enabled with `--features interop`).
