//! The target of an `http` health probe, parsed once when the config is loaded.
//!
//! Owns: turning `healthcheck.http` text into what a probe needs — the host to connect
//! to (an IPv6 literal without its brackets), the port (80 when none is given), the
//! request target (path and query string, `/` when empty) and the `Host` header — with
//! the `url` crate (WHATWG URL parsing, so `http://[::1]:8080/health?x=1` and
//! percent-encoding are understood exactly as a browser understands them).
//! Must not: connect anywhere or resolve a name (the probe does that, in the supervisor).
//! Invariants: a value exists only for a valid `http://` URL with a host and without
//! credentials; it serializes as the text the user wrote, so the config hash of a
//! process does not depend on this representation.

use std::fmt;

use serde::{Deserialize, Serialize};
use url::{Host, Position, Url};

/// An `http://` URL a probe can GET.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HttpTarget {
    /// As written in `procs.yaml` (after interpolation).
    text: String,
    /// Host to connect to: a name, an IPv4 address or an IPv6 address without brackets.
    host: String,
    port: u16,
    /// `/path?query` (never empty, never with a fragment).
    target: String,
    /// `host[:port]` as the `Host` header carries it (`[::1]:8080`).
    authority: String,
}

impl HttpTarget {
    /// Parse `text`; the error is a sentence for a config problem.
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = Url::parse(text).map_err(|err| format!("`{text}` is not a valid URL: {err}"))?;
        match url.scheme() {
            "http" => {}
            "https" => {
                return Err(format!(
                    "the `http` probe speaks plain HTTP; for `{text}` use `exec: curl -fsS {text}`"
                ));
            }
            other => {
                return Err(format!(
                    "`http` must be an `http://` URL, found `{text}` (scheme `{other}`)"
                ));
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "`{text}` carries credentials, which the `http` probe does not send; use `exec: curl -fsS …`"
            ));
        }
        let host = match url.host() {
            Some(Host::Domain(name)) => name.to_owned(),
            Some(Host::Ipv4(ip)) => ip.to_string(),
            Some(Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(format!("`{text}` has no host")),
        };
        let port = url.port_or_known_default().unwrap_or(80);
        let target = url[Position::BeforePath..Position::AfterQuery].to_owned();
        let target = if target.is_empty() {
            "/".to_owned()
        } else {
            target
        };
        let authority = url[Position::BeforeHost..Position::AfterPort].to_owned();
        Ok(Self {
            text: text.to_owned(),
            host,
            port,
            target,
            authority,
        })
    }

    /// The URL as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The host to connect to (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port (80 when the URL names none).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The request target: path and query string.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The `Host` header's value.
    pub fn authority(&self) -> &str {
        &self.authority
    }
}

impl fmt::Display for HttpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl TryFrom<String> for HttpTarget {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text)
    }
}

impl From<HttpTarget> for String {
    fn from(t: HttpTarget) -> Self {
        t.text
    }
}

#[cfg(test)]
mod tests {
    use super::HttpTarget;

    fn parts(text: &str) -> (String, u16, String, String) {
        let t = HttpTarget::parse(text).expect(text);
        (
            t.host().to_owned(),
            t.port(),
            t.target().to_owned(),
            t.authority().to_owned(),
        )
    }

    #[test]
    fn ipv6_hosts_lose_their_brackets_for_connecting_and_keep_them_in_the_host_header() {
        assert_eq!(
            parts("http://[::1]:9000/health"),
            ("::1".into(), 9000, "/health".into(), "[::1]:9000".into())
        );
        assert_eq!(
            parts("http://[::1]/"),
            ("::1".into(), 80, "/".into(), "[::1]".into())
        );
    }

    #[test]
    fn query_strings_are_part_of_the_request_target_and_fragments_are_not() {
        assert_eq!(
            parts("http://127.0.0.1:8001/health?full=1&x=a%20b#top"),
            (
                "127.0.0.1".into(),
                8001,
                "/health?full=1&x=a%20b".into(),
                "127.0.0.1:8001".into()
            )
        );
        // No path before the query: the target still starts with `/`.
        assert_eq!(parts("http://localhost:8080?ready").2, "/?ready");
        assert_eq!(parts("http://localhost").2, "/");
        assert_eq!(parts("http://localhost:80/x").3, "localhost");
    }

    #[test]
    fn bad_urls_are_sentences_naming_the_url() {
        for (text, words) in [
            ("https://x/health", "plain HTTP"),
            ("ftp://x/", "scheme `ftp`"),
            ("http://[::1/", "not a valid URL"),
            ("http://x:99999/", "not a valid URL"),
            ("localhost:8080/health", "`http` must be an `http://` URL"),
            ("http://user:pw@x/", "credentials"),
            ("not a url", "not a valid URL"),
        ] {
            let err = HttpTarget::parse(text).expect_err(text);
            assert!(err.contains(words), "{text}: {err}");
        }
    }

    #[test]
    fn it_serializes_as_the_text_written() {
        let t = HttpTarget::parse("http://[::1]:9000/h?q=1").expect("parse");
        let json = serde_json::to_string(&t).expect("serialize");
        assert_eq!(json, "\"http://[::1]:9000/h?q=1\"");
        let back: HttpTarget = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, t);
    }
}
