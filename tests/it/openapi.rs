//! The OpenAPI document: served with the read token, OpenAPI 3.1, and every route of the
//! router in it (every documented operation answers; every other method on a documented
//! path is refused with 405).

use std::collections::BTreeSet;

use mt5_reconciler::http::{Token, Tokens};
use serde_json::Value;

use crate::common;
use crate::http_api::serve_with;
use crate::http_guard::raw;

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_of_the_router_is_in_the_document() {
    let (_, db) = common::databases().await.remove(0);
    let tokens = Tokens {
        write: Token::new("w"),
        read: Token::new("r"),
    };
    let (tree, server) = serve_with(&db, tokens).await;
    let addr = server.local_addr();
    let call = |method: &str, path: &str, token: &str| {
        let headers = [
            format!("Host: {addr}"),
            format!("Authorization: Bearer {token}"),
        ];
        raw(addr, &method.to_uppercase(), path, &headers, "")
    };
    let (code, text) = call("get", "/api/openapi.json", "r");
    assert_eq!(code, 200, "{text}");
    let doc: Value = serde_json::from_str(&text).expect("JSON");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    let mut documented = BTreeSet::new();
    for (path, item) in paths {
        for method in METHODS {
            if item.get(method).is_some() {
                documented.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let want = [
        "GET /",
        "GET /accounts/{id}",
        "GET /assets/dashboard.js",
        "GET /assets/dashboard.css",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /api/status",
        "GET /api/divergences",
        "GET /api/divergences/export",
        "POST /api/divergences/{id}/acknowledge",
        "GET /api/overview",
        "GET /api/overview/divergences",
        "GET /api/alerts",
        "POST /api/alerts/{id}/cancel",
        "GET /api/accounts",
        "POST /api/accounts",
        "DELETE /api/accounts/{id}",
        "POST /api/accounts/{id}/enable",
        "POST /api/accounts/{id}/enforcement/cancel",
        "GET /api/accounts/{id}/live",
        "GET /api/accounts/{id}/history",
        "GET /api/accounts/{id}/equity",
        "GET /api/accounts/{id}/trades",
        "PUT /api/accounts/{id}/trades",
        "POST /api/accounts/{id}/trades",
        "POST /api/accounts/{id}/trades/{trade_id}/close",
        "GET /api/openapi.json",
    ];
    let want: BTreeSet<String> = want.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(documented, want);
    for (path, item) in paths {
        let concrete = path.replace("{id}", "nobody").replace("{trade_id}", "t1");
        for method in METHODS {
            let (code, body) = call(method, &concrete, "w");
            let in_doc = item.get(method).is_some();
            // A method the router serves on this path is never 405; one it does not, is.
            assert_eq!(code == 405, !in_doc, "{method} {path}: {code} {body}");
            assert!(
                !body.contains("no such endpoint"),
                "{method} {path}: {body}"
            );
            if in_doc {
                let op = &item[method];
                let open = path == "/"
                    || path == "/healthz"
                    || path.starts_with("/accounts/")
                    || path.starts_with("/assets/");
                if !open {
                    for shared in ["401", "403", "422"] {
                        assert!(op["responses"].get(shared).is_some(), "{method} {path}");
                    }
                }
            }
        }
    }
    server.stop().await;
    tree.abort().await;
}
