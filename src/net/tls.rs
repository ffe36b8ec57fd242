//! rustls client and server configurations (owned by `fetch`; the server side
//! is for tests and benchmarks).
