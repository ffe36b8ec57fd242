//! HTTP/1.1 framing, sans-IO (in progress).
