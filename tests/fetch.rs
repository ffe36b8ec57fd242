//! Integration tests of `tcpkit fetch`.
