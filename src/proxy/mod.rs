//! The pingora proxy: `impl ProxyHttp` that only dispatches.
//!
//! The phases below read top-down as the life of a request. Each is a few
//! lines calling the files that decide: [`target`] parses the target once,
//! [`endpoints`] answers `/oauth2/*`, [`gateway`] decides who makes the
//! request and whether it passes ([`route`], the session, the policy),
//! [`upstream`] builds what the upstream gets, and [`error`] turns every
//! refusal into a response ([`respond`] writes it).

pub mod ctx;
pub mod endpoints;
pub mod error;
pub mod forwarded;
pub mod gateway;
pub mod rate_limit;
pub mod request_id;
pub mod respond;
pub mod revalidate;
pub mod route;
pub mod target;
pub mod upstream;

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session as Downstream};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};
use tracing::Instrument;

use crate::identity;
use ctx::{Ctx, Outcome};
use endpoints::Endpoint;
use error::Failure;
pub use gateway::Gateway;
use target::Target;

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::new()
    }

    /// In this phase the gateway removes client-sent identity headers,
    /// answers its own endpoints, and admits or refuses the request.
    async fn request_filter(&self, down: &mut Downstream, ctx: &mut Ctx) -> pingora::Result<bool> {
        // A trusted proxy's request id, before anything is logged.
        if let Some(id) = request_id::of_trusted(down, &self.trusted_proxies) {
            ctx.adopt_id(id);
        }
        // Every log line of this request carries its id (see `Ctx::span`).
        let span = ctx.span.clone();
        async move {
            // The head is complete and what is written now is ours.
            if let Some(guard) = down.stream().and_then(crate::edge::HeadGuard::of) {
                guard.reached_proxy();
            }
            // The wait for the next request on this connection is bounded by
            // the head guard (`server.keepalive_timeout`), not here: pingora's
            // keep-alive timeout would start a timer for every read.
            // Pipelined requests are answered in order rather than dropped.
            down.set_pipelining_enabled(true);
            if down.req_header().headers.len() > self.max_headers {
                ctx.outcome = Outcome::BadRequest;
                let f = Failure::HeadTooLarge;
                f.log();
                respond::send(
                    down,
                    f.json().header("Connection", "close"),
                    &ctx.request_id,
                )
                .await?;
                return Ok(true);
            }
            identity::strip(down.req_header_mut());
            ctx.peer = down.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
            let target = match Target::of(down.req_header()) {
                Ok(t) => t,
                Err(f) => {
                    ctx.outcome = Outcome::BadRequest;
                    f.log();
                    respond::send(down, f.json(), &ctx.request_id).await?;
                    return Ok(true);
                }
            };
            ctx.rewrite = target.rewrite(down.req_header());
            if let Some(endpoint) = Endpoint::of(&target.path.path, &self.notifications_path) {
                drop(target);
                ctx.outcome = Outcome::Endpoint;
                let resp = endpoints::serve(self, down, ctx, endpoint).await;
                respond::send(down, resp, &ctx.request_id).await?;
                return Ok(true);
            }
            match self.admit(down, ctx, &target).await {
                None => Ok(false),
                Some(resp) => {
                    drop(target);
                    respond::send(down, resp, &ctx.request_id).await?;
                    Ok(true)
                }
            }
        }
        .instrument(span)
        .await
    }

    /// In this phase the gateway hands pingora a backend of the matched
    /// route's pool ([`crate::pool`]), one it has not tried for this
    /// request yet.
    async fn upstream_peer(
        &self,
        _down: &mut Downstream,
        ctx: &mut Ctx,
    ) -> pingora::Result<Box<HttpPeer>> {
        let route = ctx
            .route
            .and_then(|i| self.routes.get(i))
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route chosen"))?;
        route.pool.pick(&mut ctx.attempt).ok_or_else(|| {
            Error::explain(ErrorType::ConnectNoRoute, "every upstream tried").into_up()
        })
    }

    /// In this phase (a connect to the upstream failed, so nothing was
    /// sent) the gateway skips that backend for a while and retries the
    /// request on another of the pool, if one is left; by default pingora
    /// decides by the error alone.
    fn fail_to_connect(
        &self,
        _down: &mut Downstream,
        peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(route) = ctx.route.and_then(|i| self.routes.get(i)) {
            e.set_retry(route.pool.failed(peer, &ctx.attempt));
        }
        e
    }

    /// In this phase the gateway builds the request the upstream gets:
    /// canonical target and host, forwarding headers, its own cookies
    /// removed, identity headers set ([`upstream`]).
    async fn upstream_request_filter(
        &self,
        _down: &mut Downstream,
        req: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        upstream::prepare(req, ctx, &self.trusted_proxies, |n| {
            self.own_cookies.is_ours(n)
        })?;
        // The upstream's logs can name the request as ours do.
        req.insert_header(request_id::HEADER, ctx.request_id.header_value())?;
        ctx.upstream_started = Some(std::time::Instant::now());
        Ok(())
    }

    /// In this phase the gateway removes any `Set-Cookie` by which the
    /// upstream would set the gateway's own cookies (a compromised or
    /// careless app could otherwise plant a session or a login state),
    /// then adds the renewed session cookie when the session was due one.
    async fn response_filter(
        &self,
        _down: &mut Downstream,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        ctx.upstream_time = ctx.upstream_started.map(|t| t.elapsed());
        // Ours, whatever the upstream set: the id the logs know it by.
        resp.insert_header(request_id::HEADER, ctx.request_id.header_value())?;
        let ours = |v: &http::HeaderValue| {
            let name = v
                .as_bytes()
                .split(|b| *b == b'=')
                .next()
                .unwrap_or_default();
            std::str::from_utf8(name).is_ok_and(|n| self.own_cookies.is_ours(n.trim()))
        };
        if resp
            .headers
            .get_all(http::header::SET_COOKIE)
            .iter()
            .any(ours)
        {
            let kept: Vec<http::HeaderValue> = resp
                .headers
                .get_all(http::header::SET_COOKIE)
                .iter()
                .filter(|v| !ours(v))
                .cloned()
                .collect();
            resp.remove_header(&http::header::SET_COOKIE);
            for v in kept {
                resp.append_header(http::header::SET_COOKIE, v)?;
            }
            let _in = ctx.span.enter();
            tracing::warn!(
                route = ctx.route,
                "removed a Set-Cookie for the gateway's own cookie from the upstream's response"
            );
        }
        if let Some(c) = ctx.set_cookie.take() {
            resp.append_header(http::header::SET_COOKIE, c)?;
        }
        Ok(())
    }

    /// In this phase (a request that failed before or while proxying) the
    /// gateway answers with its own page rather than pingora's bare one.
    async fn fail_to_proxy(&self, down: &mut Downstream, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            _ => match e.esource() {
                pingora::ErrorSource::Upstream => 502,
                pingora::ErrorSource::Downstream => match e.etype() {
                    // The connection is gone: nothing to answer.
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                _ => 500,
            },
        };
        if code > 0 && down.response_written().is_none() {
            let resp = Failure::Proxy(code).json();
            let span = ctx.span.clone();
            let sent = respond::send(down, resp, &ctx.request_id);
            if let Err(e) = sent.instrument(span).await {
                let _in = ctx.span.enter();
                tracing::debug!(error = %e, "cannot send the error response");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// In this phase the gateway counts the request (`/metrics`) and
    /// writes exactly one access event.
    async fn logging(&self, down: &mut Downstream, e: Option<&Error>, ctx: &mut Ctx) {
        let status = down.response_written().map_or(0, |r| r.status.as_u16());
        self.metrics.request(ctx.route, ctx.outcome.index(), status);
        let total = ctx.started.elapsed();
        let upstream = ctx.upstream_time.unwrap_or_default();
        self.metrics
            .gateway_seconds
            .observe(total.saturating_sub(upstream).as_secs_f64());
        if let Some(t) = ctx.upstream_time {
            self.metrics.upstream_seconds.observe(t.as_secs_f64());
        }
        let Some(log) = &self.access_log else {
            return;
        };
        let req = down.req_header();
        log.record(&crate::access_log::Entry {
            request_id: ctx.request_id.as_str(),
            method: req.method.as_str(),
            path: req.uri.path(),
            status,
            outcome: ctx.outcome.as_str(),
            route: ctx.route,
            duration_us: total.as_micros() as u64,
            error: e.map(|e| e.etype().as_str()),
        });
    }

    /// The request summary pingora puts in its error logs: method and path
    /// only, because a query string can carry codes or tokens.
    fn request_summary(&self, down: &Downstream, _ctx: &Ctx) -> String {
        let req = down.req_header();
        format!("{} {}", req.method, req.uri.path())
    }
}
