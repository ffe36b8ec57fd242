//! Integration tests of `tcpkit connect`.
