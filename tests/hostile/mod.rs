//! Hostile peers: one test per failure found by trying to break tcpkit
//! (issue "Hardening"), each named for the behaviour it protects. A hostile
//! server for the clients, a hostile client (or a hostile environment: a
//! broken log pipe, a low open-file limit) for the server.

mod connect;
mod fetch;
mod serve;
mod stalled_log;
