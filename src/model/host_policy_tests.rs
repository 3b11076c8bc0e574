//! Tests of [`super::HostPolicy`]: the default denials, name and address matching, and allowed entries.

use super::*;

fn url(text: &str) -> Url {
    Url::parse(text).unwrap()
}

fn defaults() -> HostPolicy {
    HostPolicy::with_defaults(vec![], vec![])
}

#[test]
fn default_policy_denies_local_destinations() {
    let policy = defaults();
    assert_eq!(
        policy.check_url(&url("http://127.0.0.1/x")).unwrap_err(),
        "request to 127.0.0.1 refused: loopback addresses are denied (allow the host in webhook_allowed_hosts)"
    );
    assert_eq!(
        policy.check_url(&url("http://localhost:8080/")).unwrap_err(),
        "request to localhost refused: the host matches the denied entry \"localhost\" (allow the host in webhook_allowed_hosts)"
    );
    assert_eq!(
        policy.check_url(&url("http://169.254.169.254/latest/meta-data")).unwrap_err(),
        "request to 169.254.169.254 refused: the cloud metadata address is denied (allow the host in webhook_allowed_hosts)"
    );
    let denied = [
        ("http://LOCALHOST./", "denied entry \"localhost\""),
        ("http://127.1/", "loopback"),
        ("http://[::1]:80/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::ffff:169.254.169.254]/", "cloud metadata"),
        ("http://[::127.0.0.1]/", "loopback"),
        ("http://[::169.254.169.254]/", "cloud metadata"),
        ("http://[64:ff9b::7f00:1]/", "loopback"),
        ("http://[64:ff9b::a9fe:a9fe]/", "cloud metadata"),
        ("http://[64:ff9b:1::a9fe:a9fe]/", "cloud metadata"),
        ("http://[fd00:ec2::254]/", "cloud metadata"),
        ("http://[fe80::1]/", "link-local"),
        ("http://169.254.1.1/", "link-local"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://kubernetes/", "denied entry \"kubernetes\""),
        ("https://kubernetes.default.svc:443/api", "denied entry \"kubernetes.default.svc\""),
        ("https://api.kubernetes.default.svc.cluster.local/", "denied entry \"kubernetes.default.svc.cluster.local\""),
        ("http://my-svc.my-ns.svc.cluster.local:8080/", "denied entry \"svc.cluster.local\""),
        ("http://app.localhost/", "denied entry \"localhost\""),
    ];
    for (text, reason) in denied {
        let err = policy.check_url(&url(text)).unwrap_err();
        assert!(err.contains(reason), "{text}: {err}");
    }
}

#[test]
fn default_policy_matches_labels_not_substrings() {
    let policy = defaults();
    for text in [
        "https://mylocalhost.example.com/",
        "https://example.com/localhost/kubernetes",
        "https://notkubernetes/",
        "https://cluster.local.example.com/",
        "https://hooks.slack.com/services/x",
        "http://10.0.0.5:8080/",
        "http://[2001:db8::1]/",
    ] {
        assert_eq!(policy.check_url(&url(text)), Ok(()), "{text}");
    }
}

#[test]
fn resolved_addresses_are_checked() {
    let policy = defaults();
    let hook = url("https://hooks.example.com/x");
    assert_eq!(
        policy.check_address(&hook, "127.0.0.1".parse().unwrap()).unwrap_err(),
        "request to hooks.example.com refused: it resolves to 127.0.0.1; loopback addresses are denied (allow the host in webhook_allowed_hosts)"
    );
    assert!(policy
        .check_address(&hook, "::ffff:169.254.169.254".parse().unwrap())
        .unwrap_err()
        .contains("cloud metadata"));
    assert!(policy.check_address(&hook, "fe80::1:2".parse().unwrap()).unwrap_err().contains("link-local"));
    assert_eq!(policy.check_address(&hook, "93.184.216.34".parse().unwrap()), Ok(()));
    assert_eq!(policy.check_address(&hook, "2606:2800:220:1::1".parse().unwrap()), Ok(()));
}

#[test]
fn extra_denied_entries_cover_names_and_addresses() {
    let policy = HostPolicy::with_defaults(
        vec!["Internal.Example.com".into(), "10.96.0.1".into(), "api.corp:8443".into()],
        vec![],
    );
    assert!(policy
        .check_url(&url("https://svc.internal.example.com/"))
        .unwrap_err()
        .contains("\"Internal.Example.com\""));
    assert!(policy.check_url(&url("https://10.96.0.1/")).unwrap_err().contains("denied entry \"10.96.0.1\""));
    let err = policy.check_address(&url("https://sneaky.example.org/"), "10.96.0.1".parse().unwrap()).unwrap_err();
    assert_eq!(
        err,
        "request to sneaky.example.org refused: it resolves to 10.96.0.1; the address matches the denied entry \"10.96.0.1\" (allow the host in webhook_allowed_hosts)"
    );
    assert!(policy.check_url(&url("https://api.corp:8443/")).is_err());
    assert_eq!(policy.check_url(&url("https://api.corp/")), Ok(()), "the port-specific denial leaves 443 alone");
    assert_eq!(policy.check_url(&url("https://example.com/")), Ok(()));
}

#[test]
fn allowed_entries_win_for_their_port_only() {
    let policy =
        HostPolicy::with_defaults(vec![], vec!["127.0.0.1:8080".into(), "[::1]:9000".into(), "LocalHost".into()]);
    let allowed = url("http://127.0.0.1:8080/hook");
    assert_eq!(policy.check_url(&allowed), Ok(()));
    assert_eq!(policy.check_address(&allowed, "127.0.0.1".parse().unwrap()), Ok(()));
    assert!(policy.check_url(&url("http://127.0.0.1:8081/hook")).unwrap_err().contains("loopback"));
    assert!(policy.check_url(&url("http://127.0.0.1/hook")).is_err());
    assert_eq!(policy.check_url(&url("http://[::1]:9000/")), Ok(()));
    assert!(policy.check_url(&url("http://[::1]:9001/")).is_err());
    // A host entry without a port allows every port, and its resolved loopback address.
    let local = url("http://localhost:3000/");
    assert_eq!(policy.check_url(&local), Ok(()));
    assert_eq!(policy.check_address(&local, "::1".parse().unwrap()), Ok(()));
    // Allowing one host does not allow another that resolves to the same address.
    assert!(policy.check_address(&url("http://other.example.com:8080/"), "127.0.0.1".parse().unwrap()).is_err());
}
