//! `rw-passthrough`: a no-op HTTP/1.1 reverse proxy, the floor a gateway's added latency is
//! read against. See bench/gateway/README.md.

use std::io::Write as _;
use std::sync::Arc;

use ratewise_bench_gateway::args::Args;
use ratewise_bench_gateway::loadgen::Target;
use ratewise_bench_gateway::passthrough::{Upstream, serve};

const HELP: &str = "\
rw-passthrough --upstream http://HOST:PORT [--host 127.0.0.1] [--port 0]

Forwards every request unchanged to the upstream over pooled keep-alive HTTP/1.1 connections
and streams the response back: what any proxy hop must do, and nothing else. Single-threaded
runtime. Prints {\"port\": N} once bound, then serves until SIGTERM or SIGINT.";

fn main() {
    if let Err(e) = run() {
        eprintln!("rw-passthrough: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.iter().any(|a| a == "--help" || a == "-h") {
        println!("{HELP}");
        return Ok(());
    }
    let args = Args::parse(&argv, &["--upstream", "--host", "--port"], &[])?;
    let target = Target::parse(args.get("--upstream").ok_or("--upstream is required (see --help)")?)?;
    let host = args.get("--host").unwrap_or("127.0.0.1").to_string();
    let port: u16 = args.parse_or("--port", 0)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind((host.as_str(), port))
            .await
            .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?.port();
        let mut out = std::io::stdout().lock();
        writeln!(out, "{{\"port\": {bound}}}")
            .and_then(|()| out.flush())
            .map_err(|e| e.to_string())?;
        drop(out);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
        tokio::select! {
            r = serve(listener, Arc::new(Upstream::new(target))) => r.map_err(|e| format!("accept failed: {e}")),
            _ = term.recv() => Ok(()),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}
