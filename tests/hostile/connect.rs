//! Hostile-peer tests for `tcpkit connect`.
