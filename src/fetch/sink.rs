//! Where the body goes: stdout, or `FILE.part` renamed to `FILE` only once the
//! body is complete, so a failed transfer never leaves a truncated `FILE`.
//! Also the resume arithmetic of `-C -` (which file holds the partial body).
//!
//! Not for: HTTP. The caller decides, from the response, whether to append,
//! start over or finish; this module only does it to the files.
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;

/// `FILE.part` for `FILE`.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name: OsString = dest.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

/// Where `-C -` resumes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resume {
    /// Bytes already held: the Range starts here (0 = nothing to resume).
    pub offset: u64,
    /// The bytes are in `FILE` itself (no `FILE.part`): curl's meaning of `-C -`
    /// on an existing file is that it is a partial download.
    pub in_dest: bool,
}

/// Find the partial body for `dest`: `FILE.part` first, else `FILE`.
pub fn find_resume(dest: &Path) -> io::Result<Resume> {
    // The link itself, not its target: a planted FILE.part link is refused when opened.
    match std::fs::symlink_metadata(part_path(dest)) {
        Ok(m) => return Ok(Resume { offset: m.len(), in_dest: false }),
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    match std::fs::metadata(dest) {
        Ok(m) if m.is_file() => Ok(Resume { offset: m.len(), in_dest: true }),
        Ok(_) => Err(io::Error::other("not a regular file")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Resume::default()),
        Err(e) => Err(e),
    }
}

/// Open `part` for writing without following a symlink (O_NOFOLLOW) and without
/// truncating: a link, a non-regular file, a file with other hard links or another
/// owner is not a partial download of ours, and is refused untouched.
fn open_ours(part: &Path, create: bool) -> io::Result<File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let file = OpenOptions::new()
        .write(true)
        .create(create)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o666)
        .open(part)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => io::Error::other(format!("{} is a symbolic link: refused", part.display())),
            _ => e,
        })?;
    let meta = file.metadata()?;
    let why = if !meta.is_file() {
        "not a regular file"
    } else if meta.nlink() > 1 {
        "a file with other hard links"
    } else if meta.uid() != rustix::process::geteuid().as_raw() {
        "owned by another user"
    } else {
        return Ok(file);
    };
    Err(io::Error::other(format!("{} is {why}: refused", part.display())))
}

/// How a file sink starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Empty `FILE.part` (a fresh download, or the server ignored the Range).
    Fresh,
    /// Append to the partial body found by [`find_resume`] (a matching 206).
    Append(Resume),
}

enum Target {
    /// Stdout, or a destination that is not a regular file (`/dev/null`, a FIFO):
    /// written directly, with no `.part` to rename.
    Direct(File, String),
    File {
        file: File,
        part: PathBuf,
        dest: PathBuf,
    },
}

/// The body's destination. Write errors are kept, so a caller that only sees a
/// decoder's error can still tell it was the write that failed (exit 23).
pub struct Sink {
    target: Target,
    written: u64,
    progress: Option<ProgressBar>,
    error: Option<io::Error>,
}

impl Sink {
    /// The process's stdout, unbuffered (a duplicate of fd 1: Rust's `Stdout`
    /// would scan every body byte for newlines).
    pub fn stdout() -> io::Result<Sink> {
        let fd = rustix::io::dup(io::stdout().as_fd())?;
        Ok(Sink::new(Target::Direct(File::from(fd), "stdout".into())))
    }

    /// `FILE.part` for `dest`, started as `start` says.
    pub fn file(dest: &Path, start: Start) -> io::Result<Sink> {
        if std::fs::metadata(dest).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
            let file = OpenOptions::new().write(true).open(dest)?;
            return Ok(Sink::new(Target::Direct(file, dest.display().to_string())));
        }
        let part = part_path(dest);
        let file = match start {
            Start::Fresh => {
                let file = open_ours(&part, true)?;
                // Only now, once it is known to be ours, is an old FILE.part emptied.
                file.set_len(0)?;
                file
            }
            Start::Append(r) => {
                if r.in_dest {
                    std::fs::rename(dest, &part)?;
                }
                // Not O_APPEND: splice(2) refuses such files. The position is set to the end.
                let mut file = open_ours(&part, false)?;
                // The Range was computed from this length; anything else would corrupt the body.
                let len = file.seek(SeekFrom::End(0))?;
                if len != r.offset {
                    return Err(io::Error::other(format!(
                        "{} changed size: {len} bytes, not {}",
                        part.display(),
                        r.offset
                    )));
                }
                file
            }
        };
        Ok(Sink::new(Target::File { file, part, dest: dest.to_path_buf() }))
    }

    fn new(target: Target) -> Sink {
        Sink { target, written: 0, progress: None, error: None }
    }

    /// Show progress in `bar` as bytes are written.
    pub fn set_progress(&mut self, bar: ProgressBar) {
        self.progress = Some(bar);
    }

    /// Count bytes that reached the file by another way (splice).
    pub fn add_written(&mut self, n: u64) {
        self.written += n;
        if let Some(bar) = &self.progress {
            bar.inc(n);
        }
    }

    /// Bytes written through this sink.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Whether the body goes to a `.part` file (which splice may write).
    pub fn is_part_file(&self) -> bool {
        matches!(self.target, Target::File { .. })
    }

    /// The open `.part` file, for splice (None when writing directly).
    pub fn file_mut(&mut self) -> Option<&mut File> {
        match &mut self.target {
            Target::File { file, .. } => Some(file),
            Target::Direct(..) => None,
        }
    }

    /// What the output is, for messages: "stdout" or the `.part` path.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::Direct(_, name) => name.clone(),
            Target::File { part, .. } => part.display().to_string(),
        }
    }

    /// The first write error, if a write failed.
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }

    /// The body is complete: flush and move `FILE.part` to `FILE`.
    pub fn finish(mut self) -> io::Result<()> {
        if let Some(bar) = self.progress.take() {
            bar.finish_and_clear();
        }
        match self.target {
            Target::Direct(..) => Ok(()),
            Target::File { file, part, dest } => {
                drop(file);
                std::fs::rename(part, dest)
            }
        }
    }

    /// The transfer failed: the partial file and its size, for the resume hint.
    pub fn abandon(mut self) -> Option<(PathBuf, u64)> {
        if let Some(bar) = self.progress.take() {
            bar.abandon();
        }
        match self.target {
            Target::Direct(..) => None,
            Target::File { file, part, .. } => {
                let len = file.metadata().map(|m| m.len()).unwrap_or(0);
                Some((part, len))
            }
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let res = match &mut self.target {
            Target::Direct(f, _) | Target::File { file: f, .. } => f.write(buf),
        };
        match res {
            Ok(n) => {
                self.add_written(n as u64);
                Ok(n)
            }
            Err(e) => {
                let kept = io::Error::new(e.kind(), e.to_string());
                self.error.get_or_insert(kept);
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_is_renamed_only_on_finish() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.bin");
        std::fs::write(&dest, b"old").unwrap();
        let mut sink = Sink::file(&dest, Start::Fresh).unwrap();
        sink.write_all(b"new body").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        assert_eq!(sink.written(), 8);
        sink.finish().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new body");
        assert!(!part_path(&dest).exists());
    }

    #[test]
    fn abandon_keeps_part_and_reports_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f");
        let mut sink = Sink::file(&dest, Start::Fresh).unwrap();
        sink.write_all(b"12345").unwrap();
        assert_eq!(sink.abandon(), Some((part_path(&dest), 5)));
        assert!(!dest.exists());
    }

    #[test]
    fn a_planted_part_symlink_or_hard_link_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let dest = dir.path().join("f");
        std::os::unix::fs::symlink(&victim, part_path(&dest)).unwrap();
        for start in [Start::Fresh, Start::Append(Resume { offset: 8, in_dest: false })] {
            let err = Sink::file(&dest, start).err().expect("a symlinked .part is refused");
            assert!(err.to_string().contains("symbolic link"), "{err}");
        }
        std::fs::remove_file(part_path(&dest)).unwrap();
        std::fs::hard_link(&victim, part_path(&dest)).unwrap();
        let err = Sink::file(&dest, Start::Fresh).err().expect("a hard-linked .part is refused");
        assert!(err.to_string().contains("hard links"), "{err}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        // A stale FILE.part of our own is emptied and reused.
        std::fs::remove_file(part_path(&dest)).unwrap();
        std::fs::write(part_path(&dest), b"stale bytes").unwrap();
        let mut sink = Sink::file(&dest, Start::Fresh).unwrap();
        sink.write_all(b"new").unwrap();
        sink.finish().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
    }

    #[test]
    fn resume_prefers_part_then_dest() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f");
        assert_eq!(find_resume(&dest).unwrap(), Resume { offset: 0, in_dest: false });
        std::fs::write(&dest, b"abc").unwrap();
        assert_eq!(find_resume(&dest).unwrap(), Resume { offset: 3, in_dest: true });
        std::fs::write(part_path(&dest), b"ab").unwrap();
        assert_eq!(find_resume(&dest).unwrap(), Resume { offset: 2, in_dest: false });
    }

    #[test]
    fn append_from_dest_moves_it_to_part_first() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f");
        std::fs::write(&dest, b"abc").unwrap();
        let r = find_resume(&dest).unwrap();
        let mut sink = Sink::file(&dest, Start::Append(r)).unwrap();
        assert!(!dest.exists());
        sink.write_all(b"def").unwrap();
        sink.finish().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"abcdef");
    }
}
