//! Calls to Apple: the authorize URL, the code exchange, refresh-token
//! checks and revocation, the credentials probe of `check --online`.
//!
//! The token endpoint takes `client_secret_post` only (form fields; Basic
//! auth fails) and answers JSON with `Content-Type:
//! application/json;charset=ISO-8859-1`. Its errors are OAuth error codes
//! (RFC 6749 §5.2): `invalid_client` means our credentials are wrong,
//! `invalid_grant` means the code was bad, used or expired.
//! <https://developer.apple.com/documentation/sign_in_with_apple/generate_and_validate_tokens>

use std::time::Duration;

use serde::Deserialize;

use super::id_token::{self, Expectations, IdToken};
use super::notification::{self, Notification};
use super::{AppleError, ClientSecret, Jwks};
use crate::clock::SharedClock;
use crate::config;
use crate::metrics::AppleCalls;
use crate::secret::Secret;

/// The authorization code the credentials probe sends: no code Apple ever
/// issued, so Apple can only refuse it, and how it refuses tells whether
/// our client secret passed.
const PROBE_CODE: &str = "applegate.check.online.probe";

/// Apple's answer to a code exchange.
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    pub access_token: Secret<String>,
    #[serde(default)]
    pub token_type: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub refresh_token: Option<Secret<String>>,
    pub id_token: Secret<String>,
}

/// A token response read from `body`.
fn token_response(body: &[u8]) -> Result<TokenResponse, AppleError> {
    serde_json::from_slice(body).map_err(|source| AppleError::BadResponse {
        what: "token response",
        source,
    })
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// The gateway's Apple client: one per gateway, shared by all requests.
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    services_id: String,
    redirect_uri: String,
    /// Space-separated, e.g. `name email`.
    scope: String,
    audiences: Vec<String>,
    /// The Services ID and the app bundle IDs: audiences of bearer tokens.
    bearer_audiences: Vec<String>,
    leeway: u64,
    clock: SharedClock,
    /// The minted client secret (cached inside).
    pub secret: ClientSecret,
    /// Apple's signing keys (cached inside).
    pub jwks: Jwks,
    /// Calls to Apple, counted and timed (served on `/metrics`).
    pub calls: AppleCalls,
}

impl Client {
    /// A client for `apple`, redirecting back to `redirect_uri`.
    pub fn new(
        apple: &config::Apple,
        redirect_uri: String,
        clock: SharedClock,
    ) -> Result<Self, AppleError> {
        let http = reqwest::Client::builder()
            .timeout(apple.timeout)
            .connect_timeout(apple.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("applegate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AppleError::unreachable("building the HTTP client".into(), e))?;
        let calls = AppleCalls::default();
        let jwks = Jwks::new(
            format!("{}/auth/keys", apple.base_url),
            http.clone(),
            apple.keys_refetch_interval,
            clock.clone(),
        )
        .counted(calls.clone());
        let secret = ClientSecret::new(
            &apple.team_id,
            &apple.services_id,
            &apple.key_id,
            apple.private_key.clone(),
            &apple.base_url,
            apple.client_secret_lifetime,
            clock.clone(),
        );
        Ok(Client {
            http,
            base_url: apple.base_url.clone(),
            services_id: apple.services_id.clone(),
            redirect_uri,
            scope: apple.scopes.join(" "),
            audiences: vec![apple.services_id.clone()],
            bearer_audiences: std::iter::once(apple.services_id.clone())
                .chain(apple.bundle_ids.iter().cloned())
                .collect(),
            leeway: apple.leeway.as_secs(),
            clock,
            secret,
            jwks,
            calls,
        })
    }

    /// Where to send the browser: Apple's authorize page. With the `name` or
    /// `email` scope Apple requires `response_mode=form_post`.
    pub fn authorize_url(&self, state: &str, nonce: &str) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("response_mode", "form_post")
            .append_pair("client_id", &self.services_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &self.scope)
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .finish()
            // form_urlencoded writes spaces as '+'; Apple documents %20.
            .replace('+', "%20");
        format!("{}/auth/authorize?{query}", self.base_url)
    }

    /// Exchanges an authorization code for tokens.
    pub async fn exchange_code(&self, code: &str) -> Result<TokenResponse, AppleError> {
        let body = self
            .post(
                "token",
                "/auth/token",
                &[
                    ("code", code),
                    ("grant_type", "authorization_code"),
                    ("redirect_uri", self.redirect_uri.as_str()),
                ],
            )
            .await?;
        token_response(&body)
    }

    /// Asks Apple whether a refresh token still stands
    /// (`grant_type=refresh_token`): `Ok` while the user's authorization
    /// stands, [`AppleError::InvalidGrant`] once it was revoked. Apple
    /// throttles frequent checks, so callers check at most once a day or so.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse, AppleError> {
        let body = self
            .post(
                "refresh",
                "/auth/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token),
                ],
            )
            .await?;
        token_response(&body)
    }

    /// Revokes a refresh token at Apple (`/auth/revoke`): the user's
    /// authorization of the app ends, as App Store rule 5.1.1(v) asks when
    /// a user deletes their account.
    pub async fn revoke(&self, refresh_token: &str) -> Result<(), AppleError> {
        self.post(
            "revoke",
            "/auth/revoke",
            &[
                ("token", refresh_token),
                ("token_type_hint", "refresh_token"),
            ],
        )
        .await
        .map(drop)
    }

    /// POSTs `fields` with our client credentials (`client_secret_post`)
    /// to Apple's `path`; the body of a success, or Apple's OAuth error.
    /// Counted and timed as a call to `endpoint` (of
    /// [`crate::metrics::APPLE_ENDPOINTS`]).
    async fn post(
        &self,
        endpoint: &'static str,
        path: &str,
        fields: &[(&str, &str)],
    ) -> Result<bytes::Bytes, AppleError> {
        let started = std::time::Instant::now();
        let result = self.post_uncounted(path, fields).await;
        let seconds = started.elapsed().as_secs_f64();
        self.calls.observe(
            endpoint,
            seconds,
            result.as_ref().map(drop).map_err(AppleError::kind),
        );
        result
    }

    async fn post_uncounted(
        &self,
        path: &str,
        fields: &[(&str, &str)],
    ) -> Result<bytes::Bytes, AppleError> {
        let secret = self.secret.get();
        let mut form = vec![
            ("client_id", self.services_id.as_str()),
            ("client_secret", secret.expose()),
        ];
        form.extend_from_slice(fields);
        let url = format!("{}{path}", self.base_url);
        let call = || format!("POST {url}");
        let resp = self
            .http
            .post(&url)
            .form(&form)
            .send()
            .await
            .map_err(|e| AppleError::unreachable(call(), e))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| AppleError::unreachable(call(), e))?;
        if status.is_success() {
            return Ok(body);
        }
        match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(ErrorBody {
                error,
                error_description: description,
            }) => Err(match error.as_str() {
                "invalid_client" => AppleError::InvalidClient { description },
                "invalid_grant" => AppleError::InvalidGrant { description },
                _ => AppleError::Rejected { error, description },
            }),
            Err(_) => Err(AppleError::Status {
                call: call(),
                status,
            }),
        }
    }

    /// Whether Apple accepts our client secret: a code exchange with a
    /// made-up code. Apple checks the client first (RFC 6749 §5.2):
    /// `invalid_grant` means the secret passed and only the code was
    /// refused (`Ok`); `invalid_client` comes back as
    /// [`AppleError::InvalidClient`], a transport failure as
    /// [`AppleError::Unreachable`].
    pub async fn probe_credentials(&self) -> Result<(), AppleError> {
        match self.exchange_code(PROBE_CODE).await {
            Ok(_) | Err(AppleError::InvalidGrant { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Verifies an id_token from the code exchange: signature, issuer,
    /// audience (our Services ID), lifetime and nonce.
    pub async fn verify_id_token(
        &self,
        token: &str,
        nonce: Option<&str>,
    ) -> Result<IdToken, AppleError> {
        let expect = self.expect(&self.audiences, nonce);
        id_token::verify(token, &self.jwks, &expect).await
    }

    /// Verifies a bearer id_token: as [`Self::verify_id_token`], with the
    /// app bundle IDs as further audiences and no nonce (the app, not the
    /// gateway, sent it to Apple).
    pub async fn verify_bearer_token(&self, token: &str) -> Result<IdToken, AppleError> {
        let expect = self.expect(&self.bearer_audiences, None);
        id_token::verify(token, &self.jwks, &expect).await
    }

    /// Verifies a server-to-server notification's `payload` (see
    /// [`super::notification`]): Apple's keys and issuer, an audience among
    /// the Services ID and the bundle IDs (Apple addresses it to the App
    /// ID), time from the injected clock.
    pub async fn verify_notification(&self, payload: &str) -> Result<Notification, AppleError> {
        let expect = self.expect(&self.bearer_audiences, None);
        notification::verify(payload, &self.jwks, &expect).await
    }

    /// What a token from Apple must match now, for `audiences`.
    fn expect<'a>(&'a self, audiences: &'a [String], nonce: Option<&'a str>) -> Expectations<'a> {
        Expectations {
            issuer: &self.base_url,
            audiences,
            nonce,
            now: self.clock.now(),
            leeway: self.leeway,
        }
    }

    /// Allowed clock skew in seconds.
    pub fn leeway(&self) -> u64 {
        self.leeway
    }

    /// The whole server side of a sign-in: exchange the code, verify the
    /// id_token it returns (with our nonce) and its `at_hash`.
    pub async fn sign_in(
        &self,
        code: &str,
        nonce: &str,
    ) -> Result<(TokenResponse, IdToken), AppleError> {
        let tokens = self.exchange_code(code).await?;
        let claims = self
            .verify_id_token(tokens.id_token.expose(), Some(nonce))
            .await?;
        id_token::check_at_hash(&claims, tokens.access_token.expose())?;
        Ok((tokens, claims))
    }
}
