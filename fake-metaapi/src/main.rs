//! `fake-metaapi`: the fake MetaApi as a process of its own. Prints
//! `fake-metaapi listening on http://ADDR` once it accepts connections, then serves until
//! killed; `GET /fake/stats` answers its counters.

use std::net::SocketAddr;

use clap::Parser;
use fake_metaapi::process::LISTENING;
use fake_metaapi::{FakeMetaApi, Fleet, Latency, Options};

/// A fake MetaApi REST server with generated accounts.
#[derive(Debug, Parser)]
#[command(about = "A fake MetaApi REST server with generated accounts, for load and failover runs")]
struct Args {
    /// Address to listen on (port 0: a free one; the first line printed says which).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The token requests must carry in the auth-token header.
    #[arg(long, default_value = "fake-metaapi-token")]
    token: String,
    /// Generated accounts, named PREFIX000001 …
    #[arg(long, default_value_t = 1000)]
    accounts: usize,
    /// Prefix of the generated account ids.
    #[arg(long, default_value = "ma-")]
    prefix: String,
    /// Positions each account holds.
    #[arg(long, default_value_t = 20)]
    positions: usize,
    /// Every answer waits MIN-MAX milliseconds (uniform), or MS.
    #[arg(long, default_value = "100-200", value_parser = Latency::parse)]
    latency_ms: Latency,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let fake = FakeMetaApi::start_with(Options {
        listen: args.listen,
        token: args.token,
        fleet: Some(Fleet::new(&args.prefix, args.accounts, args.positions)),
        latency: args.latency_ms,
        ..Options::default()
    })
    .await;
    let fake = match fake {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: fake-metaapi cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    println!("{LISTENING}{}", fake.base_url());
    tokio::select! {
        () = fake.serve_forever() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
