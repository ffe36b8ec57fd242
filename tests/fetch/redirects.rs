//! `-L`: which redirects are followed, with which method, body and headers.
use std::sync::Arc;

use super::servers::{HyperServer, full};
use super::{fetch, parts};

/// `/s/CODE/...rest` redirects with CODE to `/...rest`; anything else says "end".
fn redirector() -> HyperServer {
    HyperServer::start(Arc::new(|seen| {
        let path = seen.target.clone();
        let Some(rest) = path.strip_prefix("/s/") else { return full(200, &[], "end") };
        let (code, next) = rest.split_once('/').unwrap_or((rest, ""));
        full(code.parse().unwrap(), &[("location", &format!("/{next}"))], "moved")
    }))
}

#[test]
fn without_location_flag_the_redirect_itself_is_the_answer() {
    let server = redirector();
    let out = fetch(&[&server.url("/s/302/x")]);
    assert_eq!((out.status.code(), out.stdout.as_slice()), (Some(0), &b"moved"[..]));
    assert_eq!(server.seen().len(), 1);
}

#[test]
fn post_becomes_get_on_303_301_302_and_stays_post_on_307_308() {
    let server = redirector();
    for (code, method, body) in
        [(303, "GET", ""), (301, "GET", ""), (302, "GET", ""), (307, "POST", "k=v"), (308, "POST", "k=v")]
    {
        let before = server.seen().len();
        let out = fetch(&["-L", "-d", "k=v", &server.url(&format!("/s/{code}/done"))]);
        assert_eq!((out.status.code(), out.stdout.as_slice()), (Some(0), &b"end"[..]), "{}", parts(&out).2);
        let seen = server.seen();
        let last = &seen[before + 1];
        assert_eq!(last.target, "/done");
        assert_eq!((last.method.as_str(), last.body.as_slice()), (method, body.as_bytes()), "after {code}");
    }
}

#[test]
fn put_keeps_its_method_on_302_but_not_on_303() {
    let server = redirector();
    fetch(&["-L", "-X", "PUT", &server.url("/s/302/s/303/end")]);
    let methods: Vec<String> = server.seen().iter().map(|s| s.method.clone()).collect();
    assert_eq!(methods, ["PUT", "PUT", "GET"]);
}

#[test]
fn relative_locations_resolve_against_the_current_url() {
    let server = HyperServer::start(Arc::new(|seen| match seen.target.as_str() {
        "/a/b/start" => full(302, &[("location", "../c?q=1")], ""),
        _ => full(200, &[], seen.target.clone()),
    }));
    let out = fetch(&["-L", &server.url("/a/b/start")]);
    assert_eq!(out.stdout, b"/a/c?q=1");
}

#[test]
fn too_many_redirects_exit_47() {
    let server = HyperServer::start(Arc::new(|_| full(302, &[("location", "/again")], "")));
    let (code, _, stderr) = parts(&fetch(&["-L", "--max-redirs", "3", &server.url("/")]));
    assert_eq!(code, 47);
    assert!(stderr.contains("maximum (3) redirects"), "{stderr}");
    assert_eq!(server.seen().len(), 4);
    let (code, _, _) = parts(&fetch(&["-L", "--max-redirs", "0", &server.url("/")]));
    assert_eq!(code, 47);
}

#[test]
fn write_out_counts_redirects() {
    let server = redirector();
    let out = fetch(&["-L", "-w", "|%{num_redirects} %{http_code}", &server.url("/s/301/s/308/x")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "end|2 200");
}

#[test]
fn credentials_and_a_custom_host_stay_with_the_original_origin() {
    let other = HyperServer::start(Arc::new(|_| full(200, &[], "other")));
    let target = other.url("/landed");
    let first = HyperServer::start(Arc::new(move |seen| match seen.target.as_str() {
        "/same" => full(302, &[("location", "/away")], ""),
        _ => full(302, &[("location", &target)], ""),
    }));
    let out = fetch(&[
        "-L",
        "-H",
        "Authorization: Bearer secret",
        "-H",
        "Cookie: s=1",
        "-H",
        "X-Plain: kept",
        "-H",
        "Host: original.test",
        &first.url("/same"),
    ]);
    assert_eq!(out.stdout, b"other", "{}", parts(&out).2);
    let at_first = first.seen();
    assert_eq!(at_first.len(), 2);
    for req in &at_first {
        assert_eq!(req.header("authorization"), Some("Bearer secret"));
        assert_eq!(req.header("cookie"), Some("s=1"));
        assert_eq!(req.header("host"), Some("original.test"));
    }
    let at_other = &other.seen()[0];
    assert_eq!(at_other.header("authorization"), None);
    assert_eq!(at_other.header("cookie"), None);
    assert_eq!(at_other.header("x-plain"), Some("kept"));
    assert_eq!(at_other.header("host"), Some(other.addr.to_string().as_str()));
}

#[test]
fn timing_shows_every_hop() {
    let server = redirector();
    let out = fetch(&["-L", "--timing", &server.url("/s/307/x")]);
    let (_, _, stderr) = parts(&out);
    assert!(stderr.contains("hop 1: GET") && stderr.contains("-> 307"), "{stderr}");
    assert!(stderr.contains("hop 2: GET") && stderr.contains("/x -> 200"), "{stderr}");
}

#[test]
fn a_file_body_is_sent_again_after_307() {
    let server = redirector();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upload.bin");
    let body = super::servers::pattern(200_000);
    std::fs::write(&path, &body).unwrap();
    let arg = format!("@{}", path.display());
    let out = fetch(&["-L", "--data-binary", &arg, "-w", "%{size_upload}", &server.url("/s/307/in")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "end400000", "{}", parts(&out).2);
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    for req in &seen {
        assert_eq!((req.method.as_str(), req.body.len()), ("POST", body.len()));
        assert_eq!(req.body, body);
        assert_eq!(req.header("content-length"), Some("200000"));
    }
}
