//! The server's limits, settled once at start: how many connections the
//! descriptors allow, the worst reply and the worst-case memory, and the
//! server-wide budget for partial lines held in memory.
//!
//! Descriptors: the connection limit is the open-file limit less what is open
//! once the listeners and every worker runtime exist (counted in
//! `/proc/self/fd`, not guessed: each worker thread's runtime holds its own
//! epoll and wake-up descriptors) less [`FD_RESERVE`]. So every client over
//! capacity can still be accepted and told `ERR server busy`.
//!
//! Not for: applying the limits (see `accept` and `conn`).
use std::sync::atomic::{AtomicUsize, Ordering};

use super::conn::{OUT_HIGH, READ_SIZE};
use super::{Config, ServeError};

/// Descriptors kept free beyond those open at start: for what the process
/// opens later (the signal handlers' pipe, a log file) and for accepting
/// clients over the limit just long enough to tell them `busy` (each holds a
/// descriptor for one write).
pub const FD_RESERVE: u64 = 16;

/// Descriptors assumed open at start where `/proc/self/fd` cannot be read
/// (stdio, listeners, runtimes of a few threads).
const OPEN_GUESS: u64 = 48;

/// The open-file limit assumed when it is unlimited or unknown.
const FD_LIMIT_GUESS: u64 = 1024;

/// Memory a connection holds beyond its buffers (task, socket registration):
/// 1.38 KiB measured per idle connection (BENCHMARKS.md), rounded up.
pub const CONN_OVERHEAD: usize = 2 * 1024;

/// Descriptors open in this process now, or `None` off Linux.
pub fn open_descriptors() -> Option<u64> {
    let dir = std::fs::read_dir("/proc/self/fd").ok()?;
    // The directory being read is itself one of the entries.
    Some((dir.count() as u64).saturating_sub(1))
}

/// Before anything is built: raise the open-file limit and refuse at once,
/// with [`ServeError::TooFewFiles`], a limit that cannot hold a runtime, a
/// listener and the reserve (a runtime failing to start would say only "too
/// many open files"). [`Capacity::settle`] checks exactly once all exists.
pub fn check_start() -> Result<(), ServeError> {
    /// A runtime's epoll and wake-up descriptors and one listener.
    const START: u64 = 4;
    let Some(limit) = crate::net::listen::raise_open_file_limit() else { return Ok(()) };
    let open = open_descriptors().unwrap_or(OPEN_GUESS) + START;
    if limit <= open + FD_RESERVE {
        return Err(ServeError::TooFewFiles { limit, open, reserve: FD_RESERVE });
    }
    Ok(())
}

/// The limits a server settled at start, for its capacity log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    /// Connections served at once.
    pub max_connections: usize,
    /// What the descriptors allow (the default of `max_connections`).
    pub fd_connections: usize,
    /// Worker threads.
    pub threads: usize,
    /// The open-file limit in force (`None`: unlimited or unknown).
    pub open_file_limit: Option<u64>,
    /// Descriptors open once listeners and workers existed (`None`: unknown).
    pub open_at_start: Option<u64>,
    /// The largest reply: the template applied to a longest line, `\n` included.
    pub worst_reply: usize,
    /// Bytes the server can hold at worst: every connection owing its client
    /// the most replies, the partial lines the input budget allows, the
    /// per-thread buffers.
    pub worst_case_memory: u64,
}

impl Capacity {
    /// Settle the limits for `config` on `threads` workers, given the
    /// open-file limit and the descriptors open now.
    pub fn settle(
        config: &Config,
        threads: usize,
        open_file_limit: Option<u64>,
        open_now: Option<u64>,
    ) -> Result<Capacity, ServeError> {
        let limit = open_file_limit.unwrap_or(FD_LIMIT_GUESS);
        let open = open_now.unwrap_or(OPEN_GUESS);
        let Some(free) = limit.checked_sub(open + FD_RESERVE).filter(|&n| n > 0) else {
            return Err(ServeError::TooFewFiles { limit, open, reserve: FD_RESERVE });
        };
        let fd_connections = usize::try_from(free).unwrap_or(usize::MAX);
        let max_connections = config.max_connections.unwrap_or(fd_connections);
        let worst_reply = config.protocol.reply.reply_len(config.max_line);
        // What one connection may owe a client that does not read: replies up
        // to OUT_HIGH, then one more (the framer pauses once past it).
        let out = OUT_HIGH + worst_reply;
        // Partial lines: at most a longest line plus one read each (the
        // buffer may double), and all together at most the input budget.
        let input_each = 2 * (config.max_line + READ_SIZE);
        let input = config.input_budget.min(max_connections.saturating_mul(input_each));
        let per_thread = READ_SIZE + out;
        let worst_case_memory = (max_connections as u64)
            .saturating_mul((out + CONN_OVERHEAD) as u64)
            .saturating_add(input as u64)
            .saturating_add((threads as u64).saturating_mul(per_thread as u64));
        Ok(Capacity {
            max_connections,
            fd_connections,
            threads,
            open_file_limit,
            open_at_start: open_now,
            worst_reply,
            worst_case_memory,
        })
    }
}

/// The server-wide budget for bytes of partial lines held in memory, shared by
/// every connection. A connection charges its line buffer's growth; when the
/// budget is spent the growing connection is told
/// [`super::protocol::INPUT_BUDGET`] and closed (close reason `input budget`,
/// logged as a warning), so memory stays bounded however many slow clients
/// each hold a partial line.
#[derive(Debug)]
pub struct InputBudget {
    limit: usize,
    used: AtomicUsize,
}

impl InputBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        InputBudget { limit, used: AtomicUsize::new(0) }
    }

    /// Take `n` bytes from the budget; false (and nothing taken) when they
    /// would pass the limit.
    pub fn try_charge(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    /// Give back `n` bytes taken earlier.
    pub fn release(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }

    /// Bytes taken now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::protocol::Protocol;

    #[test]
    fn connections_are_what_the_descriptors_leave() {
        let c = Capacity::settle(&Config::default(), 16, Some(200), Some(70)).unwrap();
        assert_eq!(c.fd_connections, 200 - 70 - FD_RESERVE as usize);
        assert_eq!(c.max_connections, c.fd_connections);
        let given = Config { max_connections: Some(5), ..Config::default() };
        assert_eq!(Capacity::settle(&given, 1, Some(200), Some(70)).unwrap().max_connections, 5);
    }

    #[test]
    fn too_few_descriptors_is_an_error_naming_the_limit() {
        let err = Capacity::settle(&Config::default(), 1, Some(8), Some(6)).unwrap_err();
        assert!(matches!(err, ServeError::TooFewFiles { limit: 8, open: 6, .. }), "{err}");
        assert!(err.to_string().contains("ulimit -n") && err.to_string().contains("23"), "{err}");
        // One connection is enough.
        assert!(Capacity::settle(&Config::default(), 1, Some(6 + FD_RESERVE + 1), Some(6)).is_ok());
    }

    #[test]
    fn worst_case_memory_counts_replies_input_and_threads() {
        let config = Config {
            protocol: Protocol::new("", "{}{}", "exit"),
            max_line: 100,
            input_budget: 1000,
            ..Config::default()
        };
        let c = Capacity::settle(&config, 2, Some(1000), Some(10)).unwrap();
        assert_eq!(c.worst_reply, 201);
        let out = (OUT_HIGH + 201) as u64;
        let n = c.max_connections as u64;
        assert_eq!(
            c.worst_case_memory,
            n * (out + CONN_OVERHEAD as u64) + 1000 + 2 * (READ_SIZE as u64 + out)
        );
    }

    #[test]
    fn the_budget_refuses_growth_past_its_limit_and_takes_it_back() {
        let b = InputBudget::new(100);
        assert!(b.try_charge(60));
        assert!(!b.try_charge(41));
        assert_eq!(b.used(), 60);
        assert!(b.try_charge(40));
        b.release(100);
        assert_eq!(b.used(), 0);
    }
}
