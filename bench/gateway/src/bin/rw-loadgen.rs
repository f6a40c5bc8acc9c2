//! `rw-loadgen`: a small open-loop HTTP/1.1 load generator without coordinated omission, for
//! the gateway benchmark. See bench/gateway/README.md.

use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use ratewise_bench_gateway::args::Args;
use ratewise_bench_gateway::loadgen::{Mode, Plan, Target, run};

const HELP: &str = "\
rw-loadgen --url http://HOST:PORT/PATH (--sequential N | --rps R --duration S)
           [--body FILE|@FILE|INLINE_JSON] [-H 'name: value']... [--stream] [--method POST]
           [--warmup N (sequential: requests) | --warmup-s S (open loop: seconds)]
           [--connections N] [--max-connections M] [--timeout-ms T] [--threads N]

Open loop: requests are scheduled every 1/R s for S s and each latency is measured from its
scheduled send time, over a pool of keep-alive HTTP/1.1 connections that grows when all are
busy (up to --max-connections, default 1000). --sequential N: one connection, back to back.
--stream: also the time to the first body byte (TTFB). Prints one JSON line: count, ok,
errors by status or kind, latency_us and ttfb_us {p50, p90, p99, p99.9, max, mean},
send_lag_us (how late requests left: large values mean the generator could not keep up),
achieved_rps (2xx per second), connections.";

fn main() {
    if let Err(e) = real_main() {
        eprintln!("rw-loadgen: {e}");
        std::process::exit(2);
    }
}

fn real_main() -> Result<(), String> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.iter().any(|a| a == "--help" || a == "-h") {
        println!("{HELP}");
        return Ok(());
    }
    let args = Args::parse(
        &argv,
        &[
            "--url",
            "--sequential",
            "--rps",
            "--duration",
            "--body",
            "-H",
            "--method",
            "--warmup",
            "--warmup-s",
            "--connections",
            "--max-connections",
            "--timeout-ms",
            "--threads",
        ],
        &["--stream"],
    )?;
    let target = Target::parse(args.get("--url").ok_or("--url is required (see --help)")?)?;
    let body = match args.get("--body") {
        None => Bytes::new(),
        Some(b) if b.trim_start().starts_with(['{', '[']) => Bytes::from(b.to_string()),
        Some(b) => {
            let file = b.strip_prefix('@').unwrap_or(b);
            Bytes::from(std::fs::read(file).map_err(|e| format!("--body: cannot read {file}: {e}"))?)
        }
    };
    let method: Method = match args.get("--method") {
        Some(m) => m.parse().map_err(|_| format!("--method: bad method '{m}'"))?,
        None => Method::POST,
    };
    let mode = match (args.parse_opt::<u64>("--sequential")?, args.parse_opt::<f64>("--rps")?) {
        (Some(n), None) => Mode::Sequential {
            n,
            warmup: args.parse_or("--warmup", 0)?,
        },
        (None, Some(rps)) => Mode::Open {
            rps,
            duration: secs(args.parse_or("--duration", 10.0)?, "--duration")?,
            warmup: secs(args.parse_or("--warmup-s", 0.0)?, "--warmup-s")?,
        },
        _ => return Err("give exactly one of --sequential N and --rps R (see --help)".into()),
    };
    let headers = Plan::headers(&target, args.all("-H"), !body.is_empty())?;
    let plan = Plan {
        target,
        method,
        body,
        headers,
        stream: args.flag("--stream"),
        mode,
        timeout: Duration::from_millis(args.parse_or("--timeout-ms", 10_000)?),
        initial_connections: args.parse_or("--connections", 1)?,
        max_connections: args.parse_or("--max-connections", 1000)?,
    };
    // The ticker thread paces sends with `thread::sleep`, which the kernel may end up to the
    // timer slack (50 µs by default) late. Threads inherit the slack of the thread that
    // creates them, so lowering it here, before any is spawned, makes the schedule tighter.
    // Best effort: without it the lateness is still measured (send_lag_us) and charged.
    let _ = std::fs::write("/proc/self/timerslack_ns", "1000");
    let threads = args.parse_or("--threads", 1usize)?;
    let runtime = if threads <= 1 {
        // One thread: the generator is pinned to one CPU with the mock, and a single-threaded
        // runtime adds no cross-thread wake-ups of its own.
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let report = runtime.block_on(run(plan))?;
    println!("{}", report.to_json());
    Ok(())
}

fn secs(x: f64, name: &str) -> Result<Duration, String> {
    if x.is_finite() && x >= 0.0 {
        Ok(Duration::from_secs_f64(x))
    } else {
        Err(format!("{name}: must be a number of seconds >= 0"))
    }
}
