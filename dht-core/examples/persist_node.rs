//! One kadmium node with a data directory, driven over stdin/stdout: the
//! process the restart tests (`tests/persist_restart.rs`) start, SIGKILL and
//! start again.
//!
//! ```text
//! cargo run --release -p dht-core --example persist_node -- \
//!     --port 9000 --data-dir /tmp/n0 [--bootstrap 127.0.0.1:9001]
//! ```
//!
//! Prints `READY <id hex> <address> <contacts>` once bound (and bootstrapped,
//! when `--bootstrap` is given), or `ERROR <message>` on stderr and exits 2
//! when the node cannot start (a locked or damaged data directory, say).
//! Then answers one line per command read from stdin:
//!
//! | command                  | answer                                   |
//! |--------------------------|------------------------------------------|
//! | `put KEY VALUE [TTL_S]`  | `PUT <stored remotely>` or `ERR <why>`   |
//! | `get KEY`                | `FOUND <value>`, `MISSING` or `ERR`      |
//! | `local KEY`              | `FOUND <value>` or `MISSING` (no network)|
//! | `contacts`               | `CONTACTS <n>`                           |
//! | `stats`                  | `STATS <values stored> <contacts>`       |
//!
//! Keys are hashed (`NodeId::digest(KEY)`); values are strings.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use dht_core::{Config, Node, NodeId, PutOptions, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const USAGE: &str = "usage: persist_node --port P --data-dir DIR [--bootstrap ADDR]";

struct Args {
    port: u16,
    data_dir: String,
    bootstrap: Vec<SocketAddr>,
}

fn parse() -> Result<Args, String> {
    let mut port = None;
    let mut data_dir = None;
    let mut bootstrap = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--port" => port = Some(value.parse().map_err(|e| format!("--port: {e}"))?),
            "--data-dir" => data_dir = Some(value),
            "--bootstrap" => {
                bootstrap.push(value.parse().map_err(|e| format!("--bootstrap: {e}"))?)
            }
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    Ok(Args {
        port: port.ok_or(format!("--port is required\n{USAGE}"))?,
        data_dir: data_dir.ok_or(format!("--data-dir is required\n{USAGE}"))?,
        bootstrap,
    })
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ERROR {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ERROR {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let config = Config::default()
        .with_bind(SocketAddr::from(([127, 0, 0, 1], args.port)))
        .with_rpc_timeout(Duration::from_millis(500))
        .with_data_dir(&args.data_dir);
    let node = match Node::bind(config).await {
        Ok(n) => n,
        Err(e) => {
            eprintln!("ERROR {e}");
            return ExitCode::from(2);
        }
    };
    if !args.bootstrap.is_empty() {
        if let Err(e) = node.bootstrap(&args.bootstrap).await {
            eprintln!("ERROR bootstrap: {e}");
            return ExitCode::from(2);
        }
    }
    let mut out = tokio::io::stdout();
    let ready = format!(
        "READY {} {} {}\n",
        node.id().to_hex(),
        node.local_addr(),
        node.contacts().len()
    );
    if out.write_all(ready.as_bytes()).await.is_err() || out.flush().await.is_err() {
        return ExitCode::FAILURE;
    }
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let answer = answer(&node, &line).await;
        if out
            .write_all(format!("{answer}\n").as_bytes())
            .await
            .is_err()
            || out.flush().await.is_err()
        {
            break;
        }
    }
    node.shutdown_and_wait().await;
    ExitCode::SUCCESS
}

async fn answer(node: &Node, line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["put", key, value, rest @ ..] => {
            let ttl = match rest.first().map(|t| t.parse::<u64>()) {
                None => None,
                Some(Ok(secs)) => Some(Duration::from_secs(secs)),
                Some(Err(e)) => return format!("ERR ttl: {e}"),
            };
            let mut options = PutOptions::default();
            options.ttl = ttl;
            match node
                .put(NodeId::digest(key.as_bytes()), Value::from(*value), options)
                .await
            {
                Ok(report) => format!("PUT {}", report.stored_remote),
                Err(e) => format!("ERR {e}"),
            }
        }
        ["get", key] => match node.get(NodeId::digest(key.as_bytes())).await {
            Ok(Some(v)) => format!("FOUND {}", show(&v)),
            Ok(None) => "MISSING".into(),
            Err(e) => format!("ERR {e}"),
        },
        ["local", key] => match node.local_value(&NodeId::digest(key.as_bytes())) {
            Some(v) => format!("FOUND {}", show(&v)),
            None => "MISSING".into(),
        },
        ["contacts"] => format!("CONTACTS {}", node.contacts().len()),
        ["stats"] => {
            let s = node.stats();
            format!("STATS {} {}", s.values_stored, s.contacts)
        }
        _ => format!("ERR unknown command {line:?}"),
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        other => format!("{other:?}"),
    }
}
