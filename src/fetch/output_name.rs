//! `-O`: the local file name a URL gives.
//!
//! For: turning an untrusted URL path into a safe name in the current directory. Not
//! for: touching the file system (the sink creates and renames files).

/// The longest file name `-O` produces, in bytes: the usual file-system limit (NAME_MAX).
pub const MAX_FILE_NAME: usize = 255;

/// The file name `-O` saves `url` under: its last path segment, percent-decoded, made
/// safe so it can only name a file in the current directory. `/`, `\`, NUL and other
/// control characters become `_`, leading dots are dropped (so `..` and `.bashrc` cannot
/// be written), the name is cut to [`MAX_FILE_NAME`] bytes, and an empty result is
/// `index.html`. The query and fragment are not part of the name.
pub fn output_name_from_url(url: &url::Url) -> String {
    let segment = url.path_segments().and_then(|mut segments| segments.next_back()).unwrap_or("");
    let decoded = percent_decode(segment.as_bytes());
    let text = String::from_utf8_lossy(&decoded);
    let cleaned: String =
        text.chars().map(|c| if c == '/' || c == '\\' || c.is_control() { '_' } else { c }).collect();
    let trimmed = cleaned.trim_start_matches('.');
    let mut end = trimmed.len().min(MAX_FILE_NAME);
    while !trimmed.is_char_boundary(end) {
        end -= 1;
    }
    match &trimmed[..end] {
        "" => "index.html".to_string(),
        name => name.to_string(),
    }
}

/// `%XX` sequences decoded to bytes; a `%` not followed by two hex digits stays as is.
fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let pair = match (s[i], s.get(i + 1).and_then(|&b| hex(b)), s.get(i + 2).and_then(|&b| hex(b))) {
            (b'%', Some(hi), Some(lo)) => Some((hi * 16 + lo) as u8),
            _ => None,
        };
        match pair {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(s[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(url: &str) -> String {
        output_name_from_url(&url::Url::parse(url).unwrap())
    }

    #[test]
    fn output_name_is_the_last_path_segment_decoded() {
        assert_eq!(name("http://h/dir/file.tar.gz"), "file.tar.gz");
        assert_eq!(name("http://h/dir/file.txt?x=1#frag"), "file.txt");
        assert_eq!(name("http://h/a%20b%C3%A9.txt"), "a b\u{e9}.txt");
        assert_eq!(name("http://h/100%"), "100%");
        assert_eq!(name("http://h/%zz"), "%zz");
    }

    #[test]
    fn output_name_is_index_html_when_the_path_has_no_last_segment() {
        for url in
            ["http://h", "http://h/", "http://h/dir/", "http://h/?q=1", "http://h/..", "http://h/%2e%2e"]
        {
            assert_eq!(name(url), "index.html", "{url}");
        }
    }

    #[test]
    fn output_name_can_never_leave_the_current_directory() {
        assert_eq!(name("http://h/a%2F..%2F..%2Fetc%2Fpasswd"), "a_.._.._etc_passwd");
        assert_eq!(name("http://h/%2F%2Fetc"), "__etc");
        assert_eq!(name("http://h/..%2F..%2Fx"), "_.._x");
        assert_eq!(name("http://h/a%5Cb"), "a_b");
        assert_eq!(name("http://h/.bashrc"), "bashrc");
        assert_eq!(name("http://h/...%2E"), "index.html");
        assert_eq!(name("http://h/nul%00byte%0Aline"), "nul_byte_line");
        for url in ["http://h/%2e%2e%2f%2e%2e%2fx", "http://h/a/..%2f..%2f..", "http://h/%00"] {
            let n = name(url);
            assert!(
                !n.contains('/') && !n.contains('\0') && !n.starts_with('.') && !n.is_empty(),
                "{url}: {n}"
            );
        }
    }

    #[test]
    fn output_name_is_cut_to_the_file_system_limit_on_a_char_boundary() {
        let long = "\u{e9}".repeat(200); // 400 bytes
        let n = name(&format!("http://h/{long}"));
        assert_eq!(n.len(), 254);
        assert!(n.chars().all(|c| c == '\u{e9}'));
    }
}
