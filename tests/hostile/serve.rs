//! Hostile-peer tests for `tcpkit serve`.
