//! Reading a request body an endpoint takes, under its cap.

use pingora::proxy::Session as Downstream;

use crate::proxy::error::Failure;

/// The whole body, refused ([`Failure::TooLarge`]) once it would pass
/// `cap` bytes: a declared length over the cap is refused unread.
pub(super) async fn read_body(down: &mut Downstream, cap: usize) -> Result<Vec<u8>, Failure> {
    if let Some(len) = down
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
    {
        if len > cap {
            return Err(Failure::TooLarge);
        }
    }
    let mut body = Vec::new();
    loop {
        match down.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > cap {
                    return Err(Failure::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(_) => return Err(Failure::BadRequest("unreadable body")),
        }
    }
}
