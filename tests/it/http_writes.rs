//! The trades and accounts API in-process (SQLite, and PostgreSQL when DATABASE_URL is
//! set): writes are idempotent, bodies are validated like trade files, the read token
//! cannot write, and every error has one JSON shape.

use mt5_reconciler::http::{Token, Tokens};
use mt5_reconciler::store;
use serde_json::{Value, json};

use crate::common;
use crate::http_api::serve_with;
use crate::http_guard::raw;

const WRITE: &str = "w-token";
const READ: &str = "r-token";

struct Api {
    addr: std::net::SocketAddr,
}

impl Api {
    fn call(&self, method: &str, path: &str, token: &str, body: Option<&str>) -> (u16, Value) {
        let mut headers = vec![
            format!("Host: {}", self.addr),
            format!("Authorization: Bearer {token}"),
        ];
        if body.is_some() {
            headers.push("Content-Type: application/json".to_owned());
        }
        let (code, text) = raw(self.addr, method, path, &headers, body.unwrap_or(""));
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (code, value)
    }
}

fn counts(v: &Value) -> [u64; 4] {
    ["written", "unchanged", "stale", "closed"].map(|k| v[k].as_u64().unwrap_or(99))
}

fn tokens() -> Tokens {
    Tokens {
        write: Token::new(WRITE),
        read: Token::new(READ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trades_are_written_idempotently_and_listed_with_their_versions() {
    for (label, db) in common::databases().await {
        let (tree, server) = serve_with(&db, tokens()).await;
        let api = Api {
            addr: server.local_addr(),
        };
        let (code, v) = api.call(
            "POST",
            "/api/accounts",
            WRITE,
            Some(r#"[{"id": "hw-1", "broker": "sim"}, {"id": "hw-2", "broker": "sim", "name": "Two"}]"#),
        );
        assert_eq!(
            (code, &v),
            (200, &json!({"added": 2, "updated": 0, "unchanged": 0})),
            "{label}"
        );
        let (_, v) = api.call(
            "POST",
            "/api/accounts",
            WRITE,
            Some(r#"{"id": "hw-1", "broker": "sim"}"#),
        );
        assert_eq!(v["unchanged"], 1, "{label}: {v}");

        let set = r#"[
            {"id": "t1", "symbol": "EURUSD", "side": "buy", "volume": "0.10", "entry_price": "1.08500", "version": 3},
            {"id": "t2", "symbol": "USDJPY", "side": "sell", "volume": 1, "entry_price": 150.1, "ticket": "18446744073709551615", "version": "18446744073709551615"}
        ]"#;
        let path = "/api/accounts/hw-1/trades";
        let (code, v) = api.call("PUT", path, WRITE, Some(set));
        assert_eq!((code, counts(&v)), (200, [2, 0, 0, 0]), "{label}: {v}");
        let revision = store::trades_revision(&db, "hw-1").await.unwrap();
        // The same request again: nothing changes, not even the marker.
        let (code, v) = api.call("PUT", path, WRITE, Some(set));
        assert_eq!((code, counts(&v)), (200, [0, 2, 0, 0]), "{label}: {v}");
        assert_eq!(store::trades_revision(&db, "hw-1").await.unwrap(), revision);

        let (code, v) = api.call("GET", path, READ, None);
        assert_eq!(code, 200, "{label}: {v}");
        let items = v["items"].as_array().expect("items");
        assert_eq!(items[0]["entry_price"], "1.08500", "{label}");
        assert_eq!(items[0]["version"], "3", "{label}");
        assert_eq!(items[1]["ticket"], "18446744073709551615", "{label}");
        assert_eq!(items[1]["version"], "18446744073709551615", "{label}");

        let late = r#"[{"id": "t1", "symbol": "EURUSD", "side": "buy", "volume": "0.2", "entry_price": "1.1", "version": 2}]"#;
        let (_, v) = api.call("POST", path, WRITE, Some(late));
        assert_eq!(counts(&v), [0, 0, 1, 0], "{label}: {v}");

        let close = "/api/accounts/hw-1/trades/t1/close";
        let (code, v) = api.call("POST", close, WRITE, Some(r#"{"version": 3}"#));
        assert_eq!((code, counts(&v)), (200, [0, 0, 0, 1]), "{label}: {v}");
        let (code, v) = api.call("POST", close, WRITE, None);
        assert_eq!((code, counts(&v)), (200, [0, 1, 0, 0]), "{label}: {v}");
        let (code, v) = api.call("POST", "/api/accounts/hw-1/trades/nope/close", WRITE, None);
        assert_eq!(
            (code, v["error"].as_str()),
            (404, Some("not_found")),
            "{label}"
        );

        // PUT with one trade closes the other; DELETE disables the account, twice is a no-op.
        let (_, v) = api.call("PUT", path, WRITE, Some("[]"));
        assert_eq!(counts(&v), [0, 0, 0, 1], "{label}: {v}");
        let (code, v) = api.call("DELETE", "/api/accounts/hw-2", WRITE, None);
        assert_eq!((code, &v["changed"]), (200, &json!(true)), "{label}: {v}");
        let (_, v) = api.call("DELETE", "/api/accounts/hw-2", WRITE, None);
        assert_eq!(v["changed"], json!(false), "{label}: {v}");
        let (_, v) = api.call("GET", "/api/accounts", READ, None);
        let two = &v["items"].as_array().unwrap()[1];
        assert_eq!(
            (two["enabled"].as_bool(), two["name"].as_str()),
            (Some(false), Some("Two"))
        );
        server.stop().await;
        tree.abort().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_answer_one_json_error_shape_and_the_read_token_cannot_write() {
    let (_, db) = common::databases().await.remove(0);
    let (tree, server) = serve_with(&db, tokens()).await;
    let api = Api {
        addr: server.local_addr(),
    };
    let (code, _) = api.call(
        "POST",
        "/api/accounts",
        WRITE,
        Some(r#"{"id": "hw-9", "broker": "sim"}"#),
    );
    assert_eq!(code, 200);
    let path = "/api/accounts/hw-9/trades";
    let expect = |(code, v): (u16, Value), want: u16, error: &str| {
        assert_eq!(code, want, "{v}");
        assert_eq!(v["error"], error, "{v}");
        assert!(v["message"].is_string(), "{v}");
    };
    expect(api.call("GET", path, "wrong", None), 401, "unauthorized");
    expect(api.call("PUT", path, READ, Some("[]")), 403, "forbidden");
    expect(
        api.call("DELETE", "/api/accounts/hw-9", READ, None),
        403,
        "forbidden",
    );
    expect(
        api.call("GET", "/api/nothing", READ, None),
        404,
        "not_found",
    );
    expect(
        api.call("GET", "/api/accounts/nobody/trades", READ, None),
        404,
        "not_found",
    );
    expect(
        api.call("PATCH", path, WRITE, Some("[]")),
        405,
        "method_not_allowed",
    );
    let headers = [
        format!("Host: {}", api.addr),
        format!("Authorization: Bearer {WRITE}"),
        "Content-Type: text/plain".to_owned(),
    ];
    let (code, text) = raw(api.addr, "PUT", path, &headers, "[]");
    let v: Value = serde_json::from_str(&text).expect("json");
    expect((code, v), 415, "unsupported_media_type");
    let big = format!("[{}]", " ".repeat(17 * 1024 * 1024));
    expect(
        api.call("PUT", path, WRITE, Some(&big)),
        413,
        "payload_too_large",
    );

    let bad = r#"[{"id": "t1", "symbol": "EURUSD", "side": "buy", "volume": "0.1", "entry_price": "1.1"},
                  {"id": "t2", "symbol": "EURUSD", "side": "buy", "volume": "0.1", "entry_price": "1.1", "stop_loss": 1}]"#;
    let (code, v) = api.call("PUT", path, WRITE, Some(bad));
    assert_eq!(
        (code, v["error"].as_str()),
        (422, Some("invalid_input")),
        "{v}"
    );
    assert_eq!(
        (v["index"].as_u64(), v["field"].as_str()),
        (Some(1), Some("stop_loss")),
        "{v}"
    );
    let bad = r#"[{"id": "t1", "symbol": "EURUSD", "side": "buy", "volume": "0.1", "entry_price": "1,1"}]"#;
    let (code, v) = api.call("PUT", path, WRITE, Some(bad));
    assert_eq!(
        (code, v["field"].as_str(), v["value"].as_str()),
        (422, Some("entry_price"), Some("\"1,1\"")),
        "{v}"
    );
    let bad = r#"[{"id": "t1", "symbol": "EURUSD", "side": "buy", "volume": "0.1", "entry_price": "1.1", "version": 18446744073709551616}]"#;
    let (code, v) = api.call("POST", path, WRITE, Some(bad));
    assert_eq!((code, v["field"].as_str()), (422, Some("version")), "{v}");
    assert!(store::open_trades(&db, "hw-9").await.unwrap().is_empty());
    // The write token reads too.
    let (code, _) = api.call("GET", path, WRITE, None);
    assert_eq!(code, 200);
    server.stop().await;
    tree.abort().await;
}
