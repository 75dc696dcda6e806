//! The emulator's live grants: refresh tokens, the access tokens issued
//! beside them, and their revocation.
//!
//! As at Apple, a grant ends three ways, and a refresh with its token then
//! gets `invalid_grant`: the client revokes its refresh token or one of
//! its access tokens (`POST /auth/revoke`; RFC 7009 §2.1 lets revoking
//! either end the grant, and Apple's revoke takes either), or the user
//! stops using Sign in with Apple with the app (consent revoked), which
//! ends every grant of that user.
//! <https://developer.apple.com/documentation/sign_in_with_apple/revoke_tokens>

use std::collections::HashMap;

use super::Grant;

/// Live grants by token.
#[derive(Default)]
pub(super) struct Grants {
    /// refresh token ▶ its grant.
    refresh: HashMap<String, Grant>,
    /// access token ▶ the refresh token of its grant.
    access: HashMap<String, String>,
}

impl Grants {
    /// A new grant: its refresh token and first access token.
    pub fn issue(&mut self, refresh: String, access: String, grant: Grant) {
        self.access.insert(access, refresh.clone());
        self.refresh.insert(refresh, grant);
    }

    /// The live grant of a refresh token.
    pub fn by_refresh(&self, refresh: &str) -> Option<&Grant> {
        self.refresh.get(refresh)
    }

    /// An access token issued by refreshing `refresh`.
    pub fn add_access(&mut self, refresh: &str, access: String) {
        self.access.insert(access, refresh.to_string());
    }

    /// Ends the grant `token` (a refresh or an access token) belongs to,
    /// if `client_id` is the client it was issued to; the `sub` of the
    /// grant that ended.
    pub fn revoke(&mut self, client_id: &str, token: &str) -> Option<String> {
        let refresh = match self.access.get(token) {
            Some(r) => r.clone(),
            None => token.to_string(),
        };
        match self.refresh.get(&refresh) {
            Some(g) if g.client_id == client_id => {
                let sub = g.user.sub.clone();
                self.end(|r, _| r == refresh);
                Some(sub)
            }
            _ => None,
        }
    }

    /// Ends every grant of the user `sub` (consent revoked); how many.
    pub fn revoke_user(&mut self, sub: &str) -> usize {
        self.end(|_, g| g.user.sub == sub)
    }

    /// The users with a live grant: (sub, email), sorted, once each.
    pub fn users(&self) -> Vec<(String, String)> {
        let mut users: Vec<_> = self
            .refresh
            .values()
            .map(|g| (g.user.sub.clone(), g.user.email.clone()))
            .collect();
        users.sort();
        users.dedup();
        users
    }

    fn end(&mut self, which: impl Fn(&str, &Grant) -> bool) -> usize {
        let before = self.refresh.len();
        self.refresh.retain(|r, g| !which(r, g));
        let refresh = &self.refresh;
        self.access.retain(|_, r| refresh.contains_key(r));
        before - self.refresh.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{token, Client, Emulator, Grant, User};
    use crate::httpd::Request;
    use crate::secret::Secret;

    /// An emulator with one client, and that client's secret.
    fn emulator() -> (Emulator, String) {
        let key = p256::ecdsa::SigningKey::random(&mut rand::thread_rng());
        let client = Client::new(
            "c.web",
            "TEAM000001",
            "KEY0000001",
            *key.verifying_key(),
            "http://localhost/cb".into(),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let emu = Emulator::start_local(listener, client, crate::clock::system()).unwrap();
        let secret = crate::apple::ClientSecret::new(
            "TEAM000001",
            "c.web",
            "KEY0000001",
            Secret::new(key),
            emu.base_url(),
            Duration::from_secs(3600),
            crate::clock::system(),
        );
        let secret = secret.get().expose().to_string();
        (emu, secret)
    }

    /// POSTs `form` (with the client's credentials) to the handler at `path`.
    fn post(
        emu: &Emulator,
        secret: &str,
        path: &str,
        form: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("client_id", "c.web"), ("client_secret", secret)])
            .extend_pairs(form)
            .finish();
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "content-type",
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        let req = Request {
            method: http::Method::POST,
            path: path.into(),
            query: None,
            headers,
            body: body.into(),
        };
        let reply = match path {
            "/auth/token" => token::token(&emu.shared, &req),
            _ => token::revoke(&emu.shared, &req),
        };
        (
            reply.status,
            serde_json::from_slice(&reply.body).unwrap_or_default(),
        )
    }

    /// A fresh grant for `email`: (refresh token, access token).
    fn sign_in(emu: &Emulator, secret: &str, email: &str) -> (String, String) {
        let code = crate::session::random_token(16);
        emu.shared.state().codes.insert(
            code.clone(),
            Grant {
                client_id: "c.web".into(),
                redirect_uri: "http://localhost/cb".into(),
                user: User {
                    sub: emu.sub_of(email),
                    email: email.into(),
                    is_private: false,
                },
                nonce: None,
                issued_at: crate::clock::system().now(),
                used: false,
            },
        );
        let (status, json) = post(
            emu,
            secret,
            "/auth/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "http://localhost/cb"),
            ],
        );
        assert_eq!(status, 200, "{json}");
        let s = |k: &str| json[k].as_str().unwrap().to_string();
        (s("refresh_token"), s("access_token"))
    }

    /// The status and error of a refresh with `refresh`.
    fn refresh(emu: &Emulator, secret: &str, refresh: &str) -> (u16, String) {
        let (status, json) = post(
            emu,
            secret,
            "/auth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        );
        (
            status,
            json["error"].as_str().unwrap_or_default().to_string(),
        )
    }

    /// Revoking the refresh token, or an access token of the grant (the
    /// first or one from a refresh), ends the grant: its refresh gets
    /// `invalid_grant`; other grants live on.
    #[test]
    fn revoking_either_token_ends_the_grant() {
        let (emu, secret) = emulator();
        let ok = (200, String::new());
        let dead = (400, "invalid_grant".to_string());
        let (r1, _) = sign_in(&emu, &secret, "a@example.com");
        let (r2, a2) = sign_in(&emu, &secret, "a@example.com");
        let (r3, _) = sign_in(&emu, &secret, "a@example.com");
        let (_, json) = post(
            &emu,
            &secret,
            "/auth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", &r3)],
        );
        let a3 = json["access_token"].as_str().unwrap().to_string();
        for (revoked, token) in [(&r1, &r1), (&r2, &a2), (&r3, &a3)] {
            assert_eq!(refresh(&emu, &secret, revoked), ok);
            assert_eq!(
                post(&emu, &secret, "/auth/revoke", &[("token", token)]).0,
                200
            );
            assert_eq!(refresh(&emu, &secret, revoked), dead);
        }
        let (r4, _) = sign_in(&emu, &secret, "a@example.com");
        assert_eq!(
            post(&emu, &secret, "/auth/revoke", &[("token", "made-up")]).0,
            200
        );
        assert_eq!(refresh(&emu, &secret, &r4), ok, "another grant lives on");
    }

    /// Consent revoked ends every grant of that user and no other's.
    #[test]
    fn consent_revoked_ends_the_users_grants() {
        let (emu, secret) = emulator();
        let (jane1, _) = sign_in(&emu, &secret, "jane@example.com");
        let (jane2, _) = sign_in(&emu, &secret, "jane@example.com");
        let (john, _) = sign_in(&emu, &secret, "john@example.com");
        assert_eq!(emu.revoke_consent(&emu.sub_of("jane@example.com")), 2);
        for r in [&jane1, &jane2] {
            assert_eq!(refresh(&emu, &secret, r), (400, "invalid_grant".into()));
        }
        assert_eq!(refresh(&emu, &secret, &john).0, 200);
    }
}
