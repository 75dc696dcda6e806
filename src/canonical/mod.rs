//! The one canonical request: the path and host that routing, policy,
//! forward auth and the upstream all use.
//!
//! An auth gateway is only as strong as the agreement between what it
//! decides on and what the upstream acts on. The request target and host
//! are parsed once, before anything looks at them, into canonical values;
//! the upstream receives exactly those values, and what cannot be made
//! unambiguous is refused with 400. [`path`] holds the rule for paths,
//! [`host`] for hosts. Neither knows anything of HTTP serving.

pub mod host;
pub mod path;

pub use host::{CanonicalHost, HostRefused};
pub use path::{CanonicalPath, PathRefused};
