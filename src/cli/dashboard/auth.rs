//! The dashboard's guard: every request must carry the run's token and name the address
//! the server listens on.
//!
//! Owns: the token, the `Host` check (DNS rebinding: a page of another site whose name
//! resolves to 127.0.0.1 sends its own name as `Host`), the `Origin` check on every POST
//! (cross-site form posts), and the cookie set by the printed link. No CORS header is
//! ever sent, so other origins cannot read answers.
//!
//! The cookie is named after the port (`procs_token_PORT`): browsers scope cookies by host,
//! not port, so one name shared by every dashboard would let the newest link overwrite the
//! cookie of every other dashboard (and of any other local app using that name).
//! Invariant: the checks are pure functions of the request's headers (unit-tested here);
//! the middleware only applies them.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

/// The name of the cookie the printed link sets, before the port: `procs_token_PORT`.
pub const COOKIE_PREFIX: &str = "procs_token_";

/// What the guard checks against.
#[derive(Debug, Clone)]
pub struct Guard {
    pub token: String,
    /// `Host` values accepted (`127.0.0.1:PORT`, `localhost:PORT`, the listen address).
    pub hosts: Vec<String>,
    /// With `--allow-remote`: also any IP literal with our port.
    pub any_ip: bool,
    pub port: u16,
}

/// A fresh random token (256 bits, hex).
pub fn new_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(bytes.iter().fold(String::new(), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    }))
}

impl Guard {
    pub fn new(token: String, listen: SocketAddr, allow_remote: bool) -> Self {
        let port = listen.port();
        let mut hosts = vec![format!("127.0.0.1:{port}"), format!("localhost:{port}")];
        let own = listen.to_string();
        if !hosts.contains(&own) {
            hosts.push(own);
        }
        Self {
            token,
            hosts,
            any_ip: allow_remote,
            port,
        }
    }

    /// Whether a `Host` header names us.
    pub fn host_ok(&self, host: Option<&str>) -> bool {
        let Some(host) = host else { return false };
        if self.hosts.iter().any(|h| h == host) {
            return true;
        }
        // An IP literal cannot be rebound by DNS.
        self.any_ip
            && host
                .parse::<SocketAddr>()
                .is_ok_and(|addr| addr.port() == self.port)
    }

    /// Whether an `Origin` is one of ours (`http://HOST` for an accepted host).
    pub fn origin_ok(&self, origin: &str) -> bool {
        origin
            .strip_prefix("http://")
            .is_some_and(|host| self.host_ok(Some(host)))
    }

    /// The cookie of this dashboard: `procs_token_PORT`.
    pub fn cookie_name(&self) -> String {
        format!("{COOKIE_PREFIX}{}", self.port)
    }

    fn token_eq(&self, given: &str) -> bool {
        // Constant time over the token's length.
        let a = self.token.as_bytes();
        let b = given.as_bytes();
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// How the request proves it knows the token, if it does.
    pub fn credential(&self, headers: &HeaderMap) -> Option<Credential> {
        if let Some(bearer) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            && self.token_eq(bearer.trim())
        {
            return Some(Credential::Bearer);
        }
        let name = self.cookie_name();
        for cookies in headers.get_all(header::COOKIE) {
            let Ok(cookies) = cookies.to_str() else {
                continue;
            };
            for pair in cookies.split(';') {
                if let Some((k, v)) = pair.trim().split_once('=')
                    && k == name
                    && self.token_eq(v)
                {
                    return Some(Credential::Cookie);
                }
            }
        }
        None
    }

    /// The verdict on one request: `Ok(credential)` or the status and reason to refuse it.
    pub fn check(
        &self,
        method: &Method,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Result<Credential, (StatusCode, &'static str)> {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        if !self.host_ok(host) {
            return Err((
                StatusCode::MISDIRECTED_REQUEST,
                "the Host header does not name this dashboard's address",
            ));
        }
        let credential = match self.credential(headers) {
            Some(c) => c,
            None if method == Method::GET && query_token.is_some_and(|t| self.token_eq(t)) => {
                Credential::Link
            }
            None => {
                return Err((
                    StatusCode::UNAUTHORIZED,
                    "missing or wrong token: open the link `procs dashboard` printed, or send `Authorization: Bearer TOKEN`",
                ));
            }
        };
        if *method != Method::GET && *method != Method::HEAD {
            let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
            match origin {
                Some(origin) if self.origin_ok(origin) => {}
                // Programs (curl, scripts) send no Origin; a browser always does on POST,
                // so a cookie without one is refused.
                None if credential == Credential::Bearer => {}
                _ => {
                    return Err((
                        StatusCode::FORBIDDEN,
                        "the Origin of this request is not this dashboard",
                    ));
                }
            }
        }
        Ok(credential)
    }
}

/// How a request proved it knows the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    Bearer,
    Cookie,
    /// The printed link's `?token=` (GET only): answered by setting the cookie.
    Link,
}

fn query_token(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "token").then(|| v.to_owned())
    })
}

/// The middleware applying [`Guard::check`] to every request.
pub async fn guard(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let token = query_token(req.uri().query());
    match guard.check(req.method(), req.headers(), token.as_deref()) {
        Err((status, why)) => (
            status,
            axum::Json(serde_json::json!({ "error": why, "causes": [], "hint": null, "code": 1 })),
        )
            .into_response(),
        Ok(Credential::Link) => {
            // Set the cookie and drop the token from the address bar.
            let mut resp = Redirect::to(req.uri().path()).into_response();
            let cookie = format!(
                "{}={}; HttpOnly; SameSite=Strict; Path=/",
                guard.cookie_name(),
                guard.token
            );
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().insert(header::SET_COOKIE, value);
            }
            resp
        }
        Ok(_) => {
            let mut resp = next.run(req).await;
            let h = resp.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            // The page loads only its own files and talks only to this server.
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"),
            );
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard {
        Guard::new("t0k".into(), "127.0.0.1:4000".parse().expect("addr"), false)
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn host_must_be_our_loopback_address() {
        let g = guard();
        assert!(g.host_ok(Some("127.0.0.1:4000")));
        assert!(g.host_ok(Some("localhost:4000")));
        assert!(!g.host_ok(Some("evil.example:4000")));
        assert!(!g.host_ok(Some("127.0.0.1:4001")));
        assert!(!g.host_ok(Some("10.0.0.1:4000")));
        assert!(!g.host_ok(None));
        let remote = Guard::new("t".into(), "0.0.0.0:4000".parse().expect("addr"), true);
        assert!(remote.host_ok(Some("10.0.0.1:4000")));
        assert!(!remote.host_ok(Some("rebind.example:4000")));
    }

    #[test]
    fn token_by_bearer_or_cookie_only_when_right() {
        let g = guard();
        let host = (header::HOST, "127.0.0.1:4000");
        let ok = headers(&[host.clone(), (header::AUTHORIZATION, "Bearer t0k")]);
        assert_eq!(g.check(&Method::GET, &ok, None), Ok(Credential::Bearer));
        let bad = headers(&[host.clone(), (header::AUTHORIZATION, "Bearer nope")]);
        assert_eq!(
            g.check(&Method::GET, &bad, None).map_err(|e| e.0),
            Err(StatusCode::UNAUTHORIZED)
        );
        let cookie = headers(&[host.clone(), (header::COOKIE, "a=b; procs_token_4000=t0k")]);
        assert_eq!(g.check(&Method::GET, &cookie, None), Ok(Credential::Cookie));
        // Another port's cookie, or the port-less name, is not ours.
        for other in ["procs_token_4001=t0k", "procs_token=t0k"] {
            let h = headers(&[host.clone(), (header::COOKIE, other)]);
            assert_eq!(
                g.check(&Method::GET, &h, None).map_err(|e| e.0),
                Err(StatusCode::UNAUTHORIZED),
                "{other}"
            );
        }
        let none = headers(&[host]);
        assert_eq!(
            g.check(&Method::GET, &none, Some("t0k")),
            Ok(Credential::Link)
        );
        assert!(g.check(&Method::POST, &none, Some("t0k")).is_err());
    }

    #[test]
    fn post_needs_our_origin_and_a_cookie_post_needs_one_at_all() {
        let g = guard();
        let host = (header::HOST, "127.0.0.1:4000");
        let bearer = (header::AUTHORIZATION, "Bearer t0k");
        let cookie = (header::COOKIE, "procs_token_4000=t0k");
        let h = headers(&[host.clone(), bearer.clone()]);
        assert!(g.check(&Method::POST, &h, None).is_ok());
        let h = headers(&[host.clone(), cookie.clone()]);
        assert_eq!(
            g.check(&Method::POST, &h, None).map_err(|e| e.0),
            Err(StatusCode::FORBIDDEN)
        );
        let h = headers(&[
            host.clone(),
            cookie,
            (header::ORIGIN, "http://127.0.0.1:4000"),
        ]);
        assert!(g.check(&Method::POST, &h, None).is_ok());
        let h = headers(&[host, bearer, (header::ORIGIN, "http://evil.example")]);
        assert_eq!(
            g.check(&Method::POST, &h, None).map_err(|e| e.0),
            Err(StatusCode::FORBIDDEN)
        );
    }

    #[test]
    fn tokens_are_long_and_differ() {
        let a = new_token().expect("token");
        let b = new_token().expect("token");
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
