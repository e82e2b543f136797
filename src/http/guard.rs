//! Who may call the API: the two bearer tokens, or, without any token (loopback only), a
//! request whose `Host` and `Origin` are loopback, so a web page cannot reach the API by
//! DNS rebinding (its requests carry the page's own host name).

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::server::AppState;

/// Lets a request through, or answers 401 / 403 in the JSON error shape.
pub(super) async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let s = &state.0;
    let write = !matches!(*req.method(), Method::GET | Method::HEAD);
    if !s.tokens.any() {
        if let Err(why) = loopback_request(req.headers(), s.port) {
            tracing::debug!(path = %req.uri().path(), why, "request from a foreign host refused");
            let mut e = ApiError::new(StatusCode::FORBIDDEN, why);
            e.error = "forbidden_host";
            return e.into_response();
        }
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let accepts = |t: &Option<super::Token>| t.as_ref().is_some_and(|t| t.accepts(given));
    if accepts(&s.tokens.write) {
        return next.run(req).await;
    }
    if accepts(&s.tokens.read) {
        if !write {
            return next.run(req).await;
        }
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "the read token cannot write: use the write token",
        )
        .into_response();
    }
    tracing::debug!(path = %req.uri().path(), "request without a valid token refused");
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "a bearer token is required: Authorization: Bearer <token>",
    )
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

/// `Ok` when `Host` names a loopback host with the bound `port` and `Origin`, if any, a
/// loopback host; otherwise why not.
fn loopback_request(headers: &HeaderMap, port: u16) -> Result<(), String> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .ok_or("the Host header is required")?;
    match split_host(host) {
        Some((name, p)) if is_loopback_name(name) && p.unwrap_or(80) == port => {}
        _ => {
            return Err(format!(
                "Host {host:?} is not a loopback name with port {port}: without a token the API \
                 answers only 127.0.0.1:{port}, localhost:{port} or [::1]:{port}"
            ));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        let ok = authority
            .and_then(split_host)
            .is_some_and(|(name, _)| is_loopback_name(name));
        if !ok {
            return Err(format!(
                "Origin {origin:?} is not loopback: without a token the API answers only pages \
                 served from loopback"
            ));
        }
    }
    Ok(())
}

/// `name[:port]` or `[v6][:port]`; `None` when malformed.
fn split_host(text: &str) -> Option<(&str, Option<u16>)> {
    let (name, port) = if let Some(rest) = text.strip_prefix('[') {
        let (name, rest) = rest.split_once(']')?;
        (name, rest.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (text, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse().ok()?),
        None => None,
    };
    Some((name, port))
}

/// `localhost` or a loopback IP (127.0.0.0/8, ::1).
fn is_loopback_name(name: &str) -> bool {
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().unwrap());
        }
        h
    }

    #[rstest::rstest]
    #[case("127.0.0.1:9187", None, true)]
    #[case("localhost:9187", None, true)]
    #[case("LOCALHOST:9187", Some("http://127.0.0.1:3000"), true)]
    #[case("[::1]:9187", Some("http://[::1]:9187"), true)]
    #[case("127.0.0.1:9188", None, false)]
    #[case("127.0.0.1", None, false)]
    #[case("evil.example:9187", None, false)]
    #[case("localhost.evil.example:9187", None, false)]
    #[case("127.0.0.1:9187", Some("http://evil.example"), false)]
    #[case("127.0.0.1:9187", Some("null"), false)]
    fn only_loopback_hosts_and_origins_pass(
        #[case] host: &str,
        #[case] origin: Option<&str>,
        #[case] ok: bool,
    ) {
        assert_eq!(loopback_request(&headers(host, origin), 9187).is_ok(), ok);
    }
}
