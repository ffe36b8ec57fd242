//! Hostile-peer tests for `tcpkit fetch`.
