//! Integration tests of `tcpkit bench`.
