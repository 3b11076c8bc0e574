//! Tests of the webhook's destination policy and of the names resolved for destinations.

use super::*;

fn destination(url: &str, allowed: &[&str]) -> Destination {
    let settings =
        WebhookSettings { allowed_hosts: allowed.iter().map(|h| h.to_string()).collect(), ..Default::default() };
    Destination::of(&Url::parse(url).unwrap(), &policy(&settings))
}

fn expected(host: &str, port: u16, lookup: &str) -> Destination {
    Destination { host: host.to_owned(), port, lookup: lookup.to_owned() }
}

#[test]
fn names_are_resolved_as_absolute_names() {
    assert_eq!(
        destination("https://hooks.example.com/x", &[]),
        expected("hooks.example.com", 443, "hooks.example.com.")
    );
    assert_eq!(destination("http://redis.ns:6379/", &[]), expected("redis.ns", 6379, "redis.ns."));
    assert_eq!(
        destination("http://hooks.example.com./", &[]),
        expected("hooks.example.com.", 80, "hooks.example.com.")
    );
}

#[test]
fn allowed_hosts_and_addresses_are_resolved_as_written() {
    assert_eq!(destination("http://redis.ns:6379/", &["redis.ns"]), expected("redis.ns", 6379, "redis.ns"));
    assert_eq!(destination("http://Redis.NS:6379/", &["redis.ns:6379"]), expected("redis.ns", 6379, "redis.ns"));
    assert_eq!(destination("http://redis.ns:6380/", &["redis.ns:6379"]), expected("redis.ns", 6380, "redis.ns."));
    assert_eq!(destination("http://10.0.0.5/", &[]), expected("10.0.0.5", 80, "10.0.0.5"));
    assert_eq!(destination("http://[::1]:9000/", &[]), expected("::1", 9000, "::1"));
}

#[test]
fn denials_name_the_webhook_setting() {
    let denied = policy(&WebhookSettings::default()).check_url(&Url::parse("http://localhost/").unwrap()).unwrap_err();
    assert!(denied.ends_with("(allow the host in webhook_allowed_hosts)"), "{denied}");
    let settings = WebhookSettings { denied_hosts: vec!["internal.example.com".into()], ..Default::default() };
    assert!(policy(&settings).check_url(&Url::parse("https://a.internal.example.com/").unwrap()).is_err());
}
