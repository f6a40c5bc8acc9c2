//! `rw-mockprovider`: a fast mock LLM upstream (OpenAI and Anthropic) for the gateway
//! benchmark. See bench/gateway/README.md.

use std::io::Write as _;
use std::sync::Arc;

use ratewise_bench_gateway::args::Args;
use ratewise_bench_gateway::mock::{Mock, MockConfig, serve};

const HELP: &str = "\
rw-mockprovider [--host 127.0.0.1] [--port 0] [--config FILE_OR_INLINE_JSON] [--threads N]

A mock OpenAI (POST /v1/chat/completions, /v1/embeddings) and Anthropic (POST /v1/messages)
upstream: real body shapes, SSE, rate-limit headers, hidden per-model token buckets (429),
faults (POST /_mock/faults), counters (GET /_mock/stats), POST /_mock/reset.
HTTP/1.1 keep-alive and h2c, TCP_NODELAY. Prints {\"port\": N} once bound, then serves until
SIGTERM or SIGINT. --threads: runtime worker threads (default: the CPUs this process may use;
1 runs a single-threaded runtime). Config: bench/gateway/README.md.";

fn main() {
    if let Err(e) = run() {
        eprintln!("rw-mockprovider: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.iter().any(|a| a == "--help" || a == "-h") {
        println!("{HELP}");
        return Ok(());
    }
    let args = Args::parse(&argv, &["--host", "--port", "--config", "--threads"], &[])?;
    let host = args.get("--host").unwrap_or("127.0.0.1").to_string();
    let port: u16 = args.parse_or("--port", 0)?;
    let config = match args.get("--config") {
        Some(c) => MockConfig::from_arg(c)?,
        None => MockConfig::default_models(),
    };
    let threads = match args.parse_opt::<usize>("--threads")? {
        Some(t) => t.max(1),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let runtime = if threads == 1 {
        // On one CPU a single-threaded runtime skips every cross-thread wake-up.
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
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
        let mock = Arc::new(Mock::new(config));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
        tokio::select! {
            r = serve(listener, mock) => r.map_err(|e| format!("accept failed: {e}")),
            _ = term.recv() => Ok(()),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}
