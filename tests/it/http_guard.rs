//! The API's guard in-process: the two tokens, and the Host/Origin check that keeps a web
//! page from reaching a token-less loopback API through DNS rebinding.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::common;
use crate::http_api::serve;

/// A raw HTTP/1.1 request with these extra header lines; returns status and body.
pub(crate) fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[String],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).expect("head sent");
    stream.write_all(body.as_bytes()).expect("body sent");
    let mut out = String::new();
    stream.read_to_string(&mut out).expect("response read");
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (code, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_host_or_origin_cannot_reach_a_tokenless_loopback_api() {
    let (_, db) = common::databases().await.remove(0);
    let (tree, server) = serve(&db).await;
    let addr = server.local_addr();
    let port = addr.port();
    let host = |h: &str| vec![format!("Host: {h}")];
    for ok in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("127.0.0.2:{port}"),
    ] {
        let (code, body) = raw(addr, "GET", "/api/status", &host(&ok), "");
        assert_eq!(code, 200, "{ok}: {body}");
    }
    // A rebound name resolves to 127.0.0.1 but keeps its own Host.
    for bad in [
        format!("attacker.example:{port}"),
        "127.0.0.1:1".to_owned(),
        format!("127.0.0.1.attacker.example:{port}"),
    ] {
        let (code, body) = raw(addr, "GET", "/api/status", &host(&bad), "");
        assert_eq!(code, 403, "{bad}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("a JSON error");
        assert_eq!(json["error"], "forbidden_host", "{body}");
    }
    let mut foreign = host(&format!("127.0.0.1:{port}"));
    foreign.push("Origin: http://attacker.example".to_owned());
    let (code, body) = raw(addr, "POST", "/api/accounts/x/enable", &foreign, "");
    assert_eq!(code, 403, "{body}");
    let mut local = host(&format!("127.0.0.1:{port}"));
    local.push(format!("Origin: http://localhost:{port}"));
    let (code, body) = raw(addr, "GET", "/api/status", &local, "");
    assert_eq!(code, 200, "{body}");
    server.stop().await;
    tree.abort().await;
}
