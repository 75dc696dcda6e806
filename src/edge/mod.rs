//! The edge: what guards client connections before a request reaches the
//! proxy.
//!
//! Pingora reads a request head with a timeout per `read` (a client sending
//! a byte a second holds a connection open), accepts heads up to 1 MiB,
//! serves any number of connections, and answers bad requests with its own
//! bare page. Its public API lets us wrap it without a fork: [`Gate`] is the
//! listening service's app, wrapping pingora's HTTP proxy app; it caps open
//! connections and wraps each connection's stream in a [`HeadGuard`], which
//! enforces a deadline for the whole head and a cap on its size, and
//! replaces the error pages pingora writes before our proxy runs.
//!
//! ```text
//! listener ─▶ Gate (connection cap; a task per connection; TLS handshake;
//!             HeadGuard around the stream, with a write buffer held until flushed)
//!               ├▶ HTTP/1: our keep-alive loop (re-arms the guard, waits for the first bytes)
//!               └▶ HTTP/2: pingora's loop
//!                    └▶ pingora's HttpProxy ─▶ our ProxyHttp (marks the guard: head done)
//! ```

mod gate;
mod head;
mod http1;
pub mod tls;
mod write_buffer;

pub use gate::{Gate, Limits, OpenConnections};
pub use head::HeadGuard;
pub use tls::{Certificate, Tls};
