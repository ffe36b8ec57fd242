//! The shipped deployment files are valid: the Kubernetes manifests against
//! the API schemas, offline, with `kubernetes-validate` (PyPI), and the
//! systemd units name flags tcpkit has.
use std::process::Command;

#[test]
fn interop_kubernetes_manifests_validate_offline() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes");
    let files: Vec<String> =
        ["deployment.yaml", "service.yaml", "pdb.yaml"].iter().map(|f| format!("{dir}/{f}")).collect();
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "--kubernetes-version", "1.30.0"])
        .args(&files)
        .output()
        .expect("kubernetes-validate not found: pip install kubernetes-validate");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches(" passed ").count(), 3, "{text}");
}

#[test]
fn interop_the_deployment_and_unit_flags_are_accepted_by_tcpkit() {
    // The serve arguments of the Deployment and of the systemd unit parse:
    // with the metrics address made one no local socket can bind, the run
    // ends in a bind error (exit 1), not a usage error (clap's 2).
    let deployment = include_str!("../../deploy/kubernetes/deployment.yaml");
    let args: Vec<&str> = deployment
        .lines()
        .skip_while(|l| !l.trim().starts_with("args:"))
        .skip(1)
        .take_while(|l| l.trim().starts_with("- "))
        .map(|l| l.trim().trim_start_matches("- ").trim_matches('"'))
        .collect();
    assert_eq!(args.first(), Some(&"serve"), "{args:?}");
    let unit = include_str!("../../deploy/systemd/tcpkit.service");
    let exec =
        unit.lines().find_map(|l| l.strip_prefix("ExecStart=/usr/local/bin/tcpkit ")).expect("ExecStart");
    for argv in
        [args.iter().map(|s| s.to_string()).collect::<Vec<_>>(), exec.split(' ').map(String::from).collect()]
    {
        let argv: Vec<String> = argv
            .into_iter()
            .map(|a| {
                if a.ends_with(":9100") {
                    "192.0.2.1:9100".to_string()
                } else {
                    if a.starts_with("0.0.0.0:") { "127.0.0.1:0".to_string() } else { a }
                }
            })
            .collect();
        let out = crate::util::tcpkit().args(&argv).output().unwrap();
        assert!(String::from_utf8_lossy(&out.stderr).contains("192.0.2.1:9100"), "{argv:?}");
        assert_eq!(out.status.code(), Some(1), "{argv:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
