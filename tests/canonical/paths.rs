//! Paths: traversal by encoded slashes, dots, backslashes and path
//! parameters is refused or resolved; case, queries and escapes.

use super::common::raw::Recorder;
use super::common::{Options, Stack};
use super::{assert_forwarded_as, assert_refused, public_root, required_root};

/// `/admin/..%2fpublic/x` read as `/public/x` by the gateway and as an
/// `/admin/...` path by Express or Flask: refused.
#[test]
fn encoded_slash_traversal_out_of_admin_is_refused() {
    let rec = Recorder::start();
    let stack = required_root(&rec);
    assert_refused(&stack, &rec, "/admin/..%2fpublic/x", 400);
    assert_refused(&stack, &rec, "/admin/..%2Fpublic/x", 400);
}

/// `/admin/%2e%2e/public/x` is `/public/x` once decided, and `/public/x` is
/// what the upstream gets, not the raw path.
#[test]
fn encoded_dot_segments_are_resolved_and_forwarded_resolved() {
    let rec = Recorder::start();
    let stack = required_root(&rec);
    assert_forwarded_as(&stack, &rec, "/admin/%2e%2e/public/x", "/public/x");
    assert_forwarded_as(&stack, &rec, "/admin/%2E%2e/public/x?a=1", "/public/x?a=1");
}

/// `/admin/x/..\..\public/x`: `\` is `/` to some servers and a name to others.
#[test]
fn backslash_traversal_is_refused() {
    let rec = Recorder::start();
    let stack = required_root(&rec);
    assert_refused(&stack, &rec, "/admin/x/..\\..\\public/x", 400);
    assert_refused(&stack, &rec, "/public/..%5cadmin", 400);
    assert_refused(&stack, &rec, "/public%5cx", 400);
}

/// `/admin/..;/public/x` is `/admin/../public/x` to Tomcat.
#[test]
fn tomcat_path_parameters_cannot_hide_a_dot_segment() {
    let rec = Recorder::start();
    let stack = required_root(&rec);
    assert_refused(&stack, &rec, "/admin/..;/public/x", 400);
    assert_refused(&stack, &rec, "/admin/..%3b/public/x", 400);
    // `/public;x/y` is `/public/y` to Tomcat but `/public;x/y` to others:
    // not public under every reading, so it needs a session.
    assert_refused(&stack, &rec, "/public;x/y", 401);
}

/// With a public root: `/admin/%2e%2e` is `/`, and `/` is what the upstream gets.
#[test]
fn public_root_encoded_dots_reach_only_the_root() {
    let rec = Recorder::start();
    let stack = public_root(&rec);
    assert_forwarded_as(&stack, &rec, "/admin/%2e%2e", "/");
    assert_forwarded_as(&stack, &rec, "/admin/.%2E/x", "/x");
}

/// `/admin/users%2f..%2f..` would be `/admin/users/../..` after decoding.
#[test]
fn public_root_encoded_traversal_is_refused() {
    let rec = Recorder::start();
    let stack = public_root(&rec);
    assert_refused(&stack, &rec, "/admin/users%2f..%2f..", 400);
}

/// Express routes without case: `/ADMIN/users` is its admin handler.
#[test]
fn protected_prefixes_win_on_case() {
    let rec = Recorder::start();
    let stack = public_root(&rec);
    assert_refused(&stack, &rec, "/ADMIN/users", 401);
    assert_refused(&stack, &rec, "/Admin", 401);
    assert_refused(&stack, &rec, "/admin;jsessionid=1/users", 401);
    assert_forwarded_as(&stack, &rec, "/administrator", "/administrator");
}

/// A route `path = "/admin/"` covers `/admin` itself (an app mounted at
/// `/admin` serves it).
#[test]
fn a_directory_route_covers_its_bare_name() {
    let rec = Recorder::start();
    let stack = Stack::with(Options {
        upstream: Some(rec.addr),
        root_auth: "public",
        routes: vec![("/admin/", "required")],
        ..Options::default()
    });
    assert_refused(&stack, &rec, "/admin", 401);
    assert_refused(&stack, &rec, "/admin/", 401);
    assert_forwarded_as(&stack, &rec, "/adminx", "/adminx");
}

/// Query strings never change which route applies.
#[test]
fn the_query_never_picks_the_route() {
    let rec = Recorder::start();
    let stack = public_root(&rec);
    assert_refused(&stack, &rec, "/admin?/public/", 401);
    assert_refused(&stack, &rec, "/admin?x=/../", 401);
    assert_forwarded_as(&stack, &rec, "/x?/admin/", "/x?/admin/");
}

/// `%20`, UTF-8 and `file%2Etxt` keep working; escapes of unreserved
/// characters are forwarded decoded.
#[test]
fn legitimate_escapes_pass() {
    let rec = Recorder::start();
    let stack = required_root(&rec);
    assert_forwarded_as(
        &stack,
        &rec,
        "/public/caf%c3%a9%20x",
        "/public/caf%C3%A9%20x",
    );
    assert_forwarded_as(&stack, &rec, "/public/file%2Etxt", "/public/file.txt");
    assert_forwarded_as(&stack, &rec, "/public//a/./b", "/public/a/b");
}

/// Malformed escapes and control characters are refused.
#[test]
fn malformed_paths_are_refused() {
    let rec = Recorder::start();
    let stack = required_root(&rec);
    for t in [
        "/public/%zz",
        "/public/%2",
        "/public/a%00",
        "/public/a%0d%0aX:1",
        "/public/%c0%ae",
    ] {
        assert_refused(&stack, &rec, t, 400);
    }
}

/// Encoded slashes: refused by default, kept (not decoded) where a route
/// says `encoded_slashes = "keep"`, and never a way to traverse.
#[test]
fn encoded_slashes_are_switchable_per_route() {
    let rec = Recorder::start();
    let stack = required_root(&rec);
    assert_refused(&stack, &rec, "/public/a%2Fb", 400);
    assert_forwarded_as(&stack, &rec, "/repo/a%2fb", "/repo/a%2Fb");
    assert_refused(&stack, &rec, "/repo/..%2Fadmin", 400);
    assert_refused(&stack, &rec, "/repo/a%2F..%2F..%2Fadmin", 400);
}
