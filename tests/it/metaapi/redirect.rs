//! The token stays on the configured host: a MetaApi base URL that redirects elsewhere
//! (a hijacked DNS name, a misconfigured proxy) never hands the `auth-token` header to the
//! other host. The redirector sends every request to the fake MetaApi on another port,
//! which records whether it saw the token.

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, Uri, header::LOCATION};
use mt5_reconciler::broker::Broker;
use mt5_reconciler::broker::metaapi::{MetaApiBroker, MetaApiConfig, Token};

use super::TOKEN;
use super::fake::{FakeMetaApi, Script};

/// A server on 127.0.0.1 answering every request with `307` to the same path on `target`.
async fn redirector(target: String) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local addr");
    let app = Router::new().fallback(move |uri: Uri| {
        let to = format!("{target}{uri}");
        async move { (StatusCode::TEMPORARY_REDIRECT, [(LOCATION, to)]) }
    });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), task)
}

#[tokio::test]
async fn a_redirect_to_another_host_never_carries_the_token() {
    let fake = FakeMetaApi::start(TOKEN, &[("ma-moved", Script::Ok)]).await;
    let (base_url, task) = redirector(fake.base_url()).await;
    let config = MetaApiConfig {
        base_url,
        request_timeout_ms: 2_000,
        connect_timeout_ms: 2_000,
        ..MetaApiConfig::default()
    };
    let ids = [("moved".to_owned(), "ma-moved".to_owned())].into();
    let token = Token::new(TOKEN).expect("token");
    let broker = Arc::new(MetaApiBroker::new(&config, token, ids).expect("client"));

    let got = broker.snapshot("moved").await;
    let carried: Vec<String> = fake
        .seen("ma-moved")
        .iter()
        .filter(|s| s.authorised)
        .map(|s| s.endpoint.clone())
        .collect();
    assert!(
        carried.is_empty(),
        "the token reached another host: {carried:?}"
    );
    let e = got.expect_err("a redirect off the configured host is refused");
    let text = e.to_string();
    assert!(text.contains("redirect"), "{text}");
    assert!(!format!("{e} {e:?}").contains(TOKEN), "{e:?}");
    task.abort();
}
