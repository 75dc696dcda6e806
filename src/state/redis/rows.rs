//! How the Redis store keeps a refresh token or a signing key in a hash:
//! `until json`, the sealed bytes in base64.

use base64::Engine;

use super::scripts;
use crate::state::StoreError;

/// A refresh row or a kept key, as kept: `until json`.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Row {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sub: String,
    pub sealed: String,
    pub at: u64,
}

pub(super) fn encode(until: u64, row: &Row) -> Vec<u8> {
    let json = serde_json::to_string(row).expect("a row of strings and numbers serializes");
    format!("{until} {json}").into_bytes()
}

pub(super) fn decode(value: &[u8]) -> Option<(u64, Row, Vec<u8>)> {
    let (until, json) = scripts::split_until(value)?;
    let row: Row = serde_json::from_slice(json).ok()?;
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(&row.sealed)
        .ok()?;
    Some((until, row, sealed))
}

pub(super) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(super) fn damaged(what: &str) -> StoreError {
    StoreError::Redis(format!("a damaged {what} row"))
}
