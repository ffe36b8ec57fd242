//! Integration tests of `tcpkit serve`.
