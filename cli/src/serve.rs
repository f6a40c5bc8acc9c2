//! `ratewise serve CONFIG [--listen ADDR]`: runs the gateway (crate `ratewise-gateway`) until
//! SIGTERM or SIGINT; SIGHUP reloads CONFIG. Prints `{"listening": "ADDR"}` on stdout once
//! bound (scripts and tests read the port from it); logs go to stderr.

use std::path::PathBuf;

/// Runs the command; `Err((message, exit status))` on failure.
pub fn run(args: &[String]) -> Result<(), (String, u8)> {
    let (positional, options) = crate::parse_args(args, &["listen"]).map_err(|m| (m, 2))?;
    let [path] = positional.as_slice() else {
        return Err((
            "serve takes one CONFIG file (ratewise serve CONFIG [--listen ADDR])".into(),
            2,
        ));
    };
    let path = PathBuf::from(path);
    let mut config =
        ratewise_gateway::ServeConfig::from_file(&path).map_err(|e| (format!("{}: {e}", path.display()), 1))?;
    for (name, value) in options {
        if name == "listen" {
            config.gateway.listen = value
                .parse()
                .map_err(|_| (format!("--listen: not an address like 127.0.0.1:8080: '{value}'"), 2))?;
        }
    }
    ratewise_gateway::init_logging();
    // One worker on the memory store: a current-thread runtime (no cross-thread wake-ups).
    // Otherwise the multi-threaded one, where engine calls that block on a Redis store move off
    // the worker (State::blocking).
    let memory = matches!(config.engine.store, ratewise::StoreConfig::Memory);
    let runtime = if config.gateway.worker_threads == 1 && memory {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.gateway.worker_threads)
            .enable_all()
            .build()
    }
    .map_err(|e| (format!("cannot start the runtime: {e}"), 1))?;
    runtime.block_on(async move {
        let running = ratewise_gateway::start(config, Some(path)).await.map_err(|e| (e, 1))?;
        crate::emit(&format!("{{\"listening\": \"{}\"}}\n", running.addr));
        tracing::info!(addr = %running.addr, "ratewise gateway listening");
        running.wait().await;
        Ok(())
    })
}
