//! The Redis transport against the faults production Redis has (issue 15): connections the
//! server closed while they sat in the pool (a restart, `--timeout`, `CLIENT KILL`), a stopped,
//! slow or black-holed server (one deadline per call), reconnect backoff, TLS with a private CA,
//! a client certificate and a password, and URLs redacted wherever they are printed.
//!
//! Each test starts its own `redis-server` on a free loopback port (no persistence unless the
//! test saves) and stops it at the end; the TLS tests make a throw-away CA and certificates with
//! `openssl`. Timings are printed; the bounds asserted are generous (`1.5 × timeout_ms + 20 ms`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests say where they fail
#![cfg(feature = "redis")]

use ratewise::{Config, Engine, Outcome, Request};
use serde_json::{Value, json};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A redis-server of this test's own.
struct Server {
    port: u16,
    dir: PathBuf,
    /// How it listens (`--port P`, or `--port 0 --tls-port P` with the TLS files).
    listen: Vec<String>,
    /// What `redis-cli` needs to talk to it (TLS, password).
    cli_args: Vec<String>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    /// A plain server with extra arguments (`--timeout 1`, `--requirepass x`).
    fn start_with(extra: &[&str]) -> Server {
        let port = free_port();
        let mut listen = vec!["--port".to_string(), port.to_string()];
        listen.extend(extra.iter().map(|s| s.to_string()));
        let cli_args = match extra.iter().position(|a| *a == "--requirepass") {
            Some(i) => vec!["-a".into(), extra[i + 1].to_string(), "--no-auth-warning".into()],
            None => Vec::new(),
        };
        Server::launched(port, listen, cli_args)
    }

    /// A TLS-only server with the test certificates, requiring `password`; `clients`: whether
    /// it requires a client certificate.
    fn start_tls(password: &str, clients: bool) -> Server {
        let c = certs();
        let port = free_port();
        let file = |name: &str| c.join(name).display().to_string();
        let listen: Vec<String> = [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &file("server.pem"),
            "--tls-key-file",
            &file("server.key"),
            "--tls-ca-cert-file",
            &file("ca.pem"),
            "--tls-auth-clients",
            if clients { "yes" } else { "no" },
            "--requirepass",
            password,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut cli_args: Vec<String> = [
            "--tls",
            "--cacert",
            &file("ca.pem"),
            "-a",
            password,
            "--no-auth-warning",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if clients {
            cli_args.extend(["--cert".into(), file("client.pem"), "--key".into(), file("client.key")]);
        }
        Server::launched(port, listen, cli_args)
    }

    fn launched(port: u16, listen: Vec<String>, cli_args: Vec<String>) -> Server {
        let dir = std::env::temp_dir().join(format!("ratewise-transport-test-{}-{port}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let server = Server {
            port,
            dir,
            listen,
            cli_args,
        };
        server.launch();
        server
    }

    fn launch(&self) {
        let status = Command::new("redis-server")
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--bind",
                "127.0.0.1",
                "--daemonize",
                "yes",
            ])
            .args(&self.listen)
            .arg("--pidfile")
            .arg(self.dir.join("redis.pid"))
            .arg("--dir")
            .arg(&self.dir)
            .status()
            .expect("cannot run redis-server (is it installed?)");
        assert!(status.success(), "redis-server failed to start");
        for _ in 0..300 {
            if self.cli(&["ping"]).trim() == "PONG" {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not answer on port {}", self.port);
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn cli(&self, args: &[&str]) -> String {
        Command::new("redis-cli")
            .arg("-p")
            .arg(self.port.to_string())
            .args(&self.cli_args)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    fn pid(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.pid"))
            .expect("the server's pidfile")
            .trim()
            .to_string()
    }

    /// Sends a signal to the server (`STOP`, `CONT`).
    fn signal(&self, sig: &str) {
        let status = Command::new("kill").arg(format!("-{sig}")).arg(self.pid()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{sig} failed");
    }

    /// Shuts the server down; with `save`, its data is written to disk first, and the next
    /// `launch` loads it (a restart that keeps the shared state, as a persistent Redis does).
    fn shutdown(&self, save: bool) {
        let _ = self.cli(&["shutdown", if save { "save" } else { "nosave" }]);
        for _ in 0..300 {
            if self.cli(&["ping"]).trim() != "PONG" {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A counter of `INFO commandstats` (`cmdstat_<command>:calls=`).
    fn calls(&self, command: &str) -> u64 {
        let info = self.cli(&["info", "commandstats"]);
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    /// `connected_clients` of `INFO clients` (this `redis-cli` included).
    fn clients(&self) -> u64 {
        self.cli(&["info", "clients"])
            .lines()
            .find_map(|l| l.strip_prefix("connected_clients:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A test that failed with the server stopped must not leave it (or `redis-cli`) hanging.
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("redis.pid")) {
            let _ = Command::new("kill").arg("-CONT").arg(pid.trim()).status();
        }
        self.shutdown(false);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A throw-away CA, a server certificate for 127.0.0.1 and a client certificate it signed, and
/// another CA that signed nothing (`other-ca.pem`), made once per test process with `openssl`.
fn certs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Under target/tmp, remade by every run (not left behind in /tmp).
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("redis-transport-tls");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("cannot run openssl (is it installed?)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        for (ca, cn) in [("ca", "ratewise test CA"), ("other-ca", "some other CA")] {
            let (key, pem, subj) = (format!("{ca}.key"), format!("{ca}.pem"), format!("/CN={cn}"));
            let mut args = vec!["req", "-x509"];
            args.extend(ec);
            args.extend(["-keyout", &key, "-out", &pem, "-days", "2", "-subj", &subj]);
            openssl(&args);
        }
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("client.ext"),
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        )
        .unwrap();
        for (who, cn) in [("server", "localhost"), ("client", "ratewise")] {
            let (key, csr, pem, ext, subj) = (
                format!("{who}.key"),
                format!("{who}.csr"),
                format!("{who}.pem"),
                format!("{who}.ext"),
                format!("/CN={cn}"),
            );
            let mut args = vec!["req"];
            args.extend(ec);
            args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
            openssl(&args);
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ]);
        }
        dir
    })
}

fn body() -> Value {
    json!({
        "providers": [{"name": "gpt", "quotas": [
            {"dimension": "requests", "limit": 100000, "window": "hour"},
            {"dimension": "concurrency", "limit": 64}
        ]}],
        "capabilities": [{"name": "chat", "providers": [{"provider": "gpt"}]}]
    })
}

/// A configuration on `url` with these store keys (`kind`, `url` and `prefix` are set).
fn config_at(url: &str, prefix: &str, store: Value) -> Config {
    let mut doc = body();
    let mut s = json!({"kind": "redis", "url": url, "prefix": prefix});
    for (k, v) in store.as_object().cloned().unwrap_or_default() {
        s[k] = v;
    }
    doc["store"] = s;
    Config::from_value(&doc).unwrap()
}

fn mode(e: &Engine) -> Value {
    e.snapshot().pointer("/store/mode").cloned().unwrap_or_default()
}

/// One acquire and its completion; the error of either.
fn call(e: &Engine) -> ratewise::Result<()> {
    let p = e.acquire("chat", &Request::new())?;
    e.complete(p.id, &Outcome::success(10, 0, 0)).map(|_| ())
}

/// Runs `f` and returns how long it took.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed())
}

const MODES: [&str; 3] = ["closed", "local", "open"];

/// One engine per `on_error` mode on `server`, each with 8 pooled connections: 8 threads call at
/// once while the server pauses writes (each call then holds its own connection).
fn warm_engines(server: &Server, name: &str) -> Vec<(&'static str, Engine)> {
    let engines: Vec<(&str, Engine)> = MODES
        .iter()
        .map(|&m| {
            let c = config_at(
                &server.url(),
                &format!("{name}-{m}"),
                json!({"on_error": m, "timeout_ms": 1000}),
            );
            (m, Engine::new(c).unwrap())
        })
        .collect();
    let before = server.clients();
    let _ = server.cli(&["client", "pause", "300", "write"]);
    std::thread::scope(|s| {
        for (_, e) in &engines {
            for _ in 0..8 {
                s.spawn(|| call(e).unwrap());
            }
        }
    });
    let pooled = server.clients() - before;
    eprintln!("{name}: {pooled} connections more pooled by {} engines", engines.len());
    assert!(pooled >= 3 * 7, "the pools are not warm ({pooled} new connections)");
    engines
}

/// After a fault that only closed connections: 8 threads × 20 calls per engine, every one in
/// shared mode, none refused.
fn no_call_notices(engines: &[(&str, Engine)], name: &str) {
    std::thread::scope(|s| {
        for (m, e) in engines {
            for _ in 0..8 {
                s.spawn(move || {
                    for i in 0..20 {
                        let r = call(e);
                        assert!(r.is_ok(), "{name}/{m}: call {i} failed: {:?}", r.err());
                        assert_eq!(mode(e), json!("shared"), "{name}/{m}: degraded after call {i}");
                    }
                });
            }
        }
    });
    for (m, e) in engines {
        assert_eq!(mode(e), json!("shared"), "{name}/{m}");
        assert_eq!(
            e.snapshot().pointer("/counters/refusals"),
            Some(&json!(0)),
            "{name}/{m}: refusals"
        );
    }
}

#[test]
fn a_restart_with_a_warm_pool_costs_no_call_in_any_mode() {
    let server = Server::start();
    let engines = warm_engines(&server, "restart");
    // A restart that keeps the data (a persistent Redis): every pooled connection is now dead.
    server.shutdown(true);
    server.launch();
    no_call_notices(&engines, "restart");
}

#[test]
fn idle_connections_the_server_timed_out_cost_no_call() {
    let server = Server::start_with(&["--timeout", "1"]);
    let engines = warm_engines(&server, "idle");
    std::thread::sleep(Duration::from_millis(2500));
    no_call_notices(&engines, "idle");
}

#[test]
fn client_kill_costs_no_call() {
    let server = Server::start();
    let engines = warm_engines(&server, "kill");
    let killed = server.cli(&["client", "kill", "type", "normal"]);
    eprintln!("CLIENT KILL TYPE normal: {} connections", killed.trim());
    no_call_notices(&engines, "kill");
}

/// `1.5 × timeout_ms + 20 ms`, the bound every call must meet.
fn bound(timeout_ms: u64) -> Duration {
    Duration::from_millis(timeout_ms * 3 / 2 + 20)
}

#[test]
fn one_deadline_bounds_every_call_to_a_stopped_server() {
    let server = Server::start();
    let t = 200;
    let store = |m: &str| json!({"on_error": m, "timeout_ms": t});
    let closed = Engine::new(config_at(&server.url(), "stopped", store("closed"))).unwrap();
    let local = Engine::new(config_at(&server.url(), "stopped", store("local"))).unwrap();
    call(&closed).unwrap();
    call(&local).unwrap();
    server.signal("STOP");
    let mut worst = Duration::ZERO;
    // Pooled connections, then fresh ones once degraded (each retry is one call).
    for round in 0..6 {
        let (r, took) = timed(|| closed.acquire("chat", &Request::new()));
        eprintln!(
            "stopped server, closed, call {round}: {} ms ({:?})",
            took.as_millis(),
            r.as_ref().err().map(|e| e.code())
        );
        assert_eq!(r.err().map(|e| e.code()), Some("store_unavailable"));
        worst = worst.max(took);
        let (r, took) = timed(|| local.acquire("chat", &Request::new()));
        eprintln!("stopped server, local, call {round}: {} ms", took.as_millis());
        assert!(r.is_ok());
        worst = worst.max(took);
        std::thread::sleep(Duration::from_millis(150));
    }
    // A new engine: connect, script load and registration, all in one deadline.
    let (built, took) = timed(|| Engine::new(config_at(&server.url(), "stopped-new", store("closed"))));
    eprintln!("stopped server, construction: {} ms", took.as_millis());
    assert_eq!(built.err().map(|e| e.code()), Some("store_unavailable"));
    worst = worst.max(took);
    server.signal("CONT");
    eprintln!("stopped server: the longest call took {} ms", worst.as_millis());
    assert!(worst <= bound(t), "a call took {worst:?} with timeout_ms {t}");
}

/// A TCP proxy in front of `target` that delays every chunk the server sends by `delay` (a slow
/// link or a struggling server).
fn delaying_proxy(target: u16, delay: Duration) -> u16 {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").expect("no free port");
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    std::thread::spawn(move || {
        for client in listener.incoming().take(64) {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let _ = (client.set_nodelay(true), server.set_nodelay(true));
            let pump = |mut from: TcpStream, mut to: TcpStream, delay: Option<Duration>| {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        if let Some(d) = delay {
                            std::thread::sleep(d);
                        }
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            };
            if let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) {
                pump(client, server, None);
                pump(s2, c2, Some(delay));
            }
        }
    });
    port
}

#[test]
fn one_deadline_bounds_connect_script_load_and_call_on_a_slow_server() {
    let server = Server::start();
    let t = 200;
    // Every reply 0.6 × timeout_ms late: connecting, NOSCRIPT, SCRIPT LOAD and EVALSHA each fit
    // in timeout_ms, all four do not.
    let proxy = delaying_proxy(server.port, Duration::from_millis(t * 6 / 10));
    let url = format!("redis://127.0.0.1:{proxy}/0");
    let mut worst = Duration::ZERO;
    for m in MODES {
        let (built, took) = timed(|| Engine::new(config_at(&url, "slow", json!({"on_error": m, "timeout_ms": t}))));
        eprintln!(
            "slow server, {m}: construction answered in {} ms ({:?})",
            took.as_millis(),
            built.as_ref().err().map(|e| e.code())
        );
        worst = worst.max(took);
        if let Ok(e) = built {
            let (_, took) = timed(|| e.acquire("chat", &Request::new()));
            eprintln!("slow server, {m}: an acquire answered in {} ms", took.as_millis());
            worst = worst.max(took);
        }
    }
    assert!(worst <= bound(t), "a call took {worst:?} with timeout_ms {t}");
}

/// A listening socket that never accepts, its accept queue full: a connect to it hangs like a
/// connect to a black-holed address (SYNs are dropped), on loopback. The fillers stay open.
fn black_hole() -> (u16, TcpListener, Vec<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("no free port");
    let port = listener.local_addr().unwrap().port();
    let mut fillers = Vec::new();
    for _ in 0..5000 {
        match TcpStream::connect_timeout(&listener.local_addr().unwrap(), Duration::from_millis(100)) {
            Ok(s) => fillers.push(s),
            Err(_) => break,
        }
    }
    eprintln!("black hole on port {port} after {} connections", fillers.len());
    (port, listener, fillers)
}

#[test]
fn one_deadline_bounds_a_connect_to_a_black_hole_or_a_silent_listener() {
    let t = 200;
    let (hole, _listener, _fillers) = black_hole();
    // Accepts connections (the kernel does) but never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    for (what, port) in [("black hole", hole), ("silent listener", silent_port)] {
        // With a password, setting a connection up takes a round trip (AUTH): the connect
        // timeout bounds it too.
        let url = format!("redis://:pw@127.0.0.1:{port}/0");
        for (store, limit) in [
            (json!({"on_error": "closed", "timeout_ms": t}), bound(t)),
            // A shorter connect timeout bounds connecting (and the connection's setup).
            (
                json!({"on_error": "closed", "timeout_ms": t, "connect_timeout_ms": 50}),
                bound(50),
            ),
        ] {
            let (built, took) = timed(|| Engine::new(config_at(&url, "hole", store.clone())));
            eprintln!("{what}, {store}: construction answered in {} ms", took.as_millis());
            let err = built.expect_err("construction succeeded");
            assert_eq!(err.code(), "store_unavailable", "{err}");
            assert!(took <= limit, "{what}: {took:?} with {store}");
        }
        // Local mode: construction degrades, and later calls (retries) meet the bound too.
        let e = Engine::new(config_at(&url, "hole", json!({"on_error": "local", "timeout_ms": t}))).unwrap();
        assert_eq!(mode(&e), json!("local"));
        let started = Instant::now();
        let mut worst = Duration::ZERO;
        while started.elapsed() < Duration::from_millis(800) {
            let (r, took) = timed(|| call(&e));
            assert!(r.is_ok(), "{r:?}");
            worst = worst.max(took);
            std::thread::sleep(Duration::from_millis(5));
        }
        eprintln!("{what}, local: the longest acquire took {} ms", worst.as_millis());
        assert!(worst <= bound(t), "{what}: {worst:?}");
    }
}

#[test]
fn reconnects_back_off_from_100_ms_to_2_s_and_recover_within_one() {
    let server = Server::start();
    let e = Engine::new(config_at(
        &server.url(),
        "backoff",
        json!({"on_error": "closed", "timeout_ms": 200}),
    ))
    .unwrap();
    call(&e).unwrap();
    server.shutdown(false);
    // Calls every 2 ms for 5 s: a call that tried Redis fails with the transport's message,
    // the others with "Redis is not answering".
    let started = Instant::now();
    let mut tries: Vec<u128> = Vec::new();
    let mut messages = std::collections::BTreeSet::new();
    while started.elapsed() < Duration::from_secs(5) {
        let err = e.acquire("chat", &Request::new()).expect_err("granted with Redis down");
        assert_eq!(err.code(), "store_unavailable");
        if !err.to_string().contains("Redis is not answering") {
            tries.push(started.elapsed().as_millis());
        }
        messages.insert(
            err.to_string()
                .chars()
                .filter(|c| !c.is_ascii_digit())
                .collect::<String>(),
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let gaps: Vec<u128> = tries.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("messages (digits left out): {messages:?}");
    eprintln!(
        "{} tries, at {:?} ms; gaps {:?}",
        tries.len(),
        &tries[..tries.len().min(20)],
        &gaps[..gaps.len().min(20)]
    );
    // The first try again comes ~100 ms after the failure (±20%), each next one up to twice as
    // late, never more often than every 80 ms nor later than 2 s + 20%.
    assert!(tries.len() >= 5 && tries.len() <= 12, "{} tries in 5 s", tries.len());
    assert!((60..=200).contains(&gaps[0]), "first retry after {} ms", gaps[0]);
    assert!(gaps.iter().all(|g| (60..=2500).contains(g)), "{gaps:?}");
    assert!(gaps.last().is_some_and(|g| *g >= 1200), "no backoff: {gaps:?}");
    // Healthy again: shared within one reconnect (the 2 s cap, +20% jitter, + one call).
    server.launch();
    let healthy = Instant::now();
    while call(&e).is_err() {
        assert!(healthy.elapsed() < Duration::from_millis(2400 + 300), "still degraded");
        std::thread::sleep(Duration::from_millis(2));
    }
    eprintln!("shared again {} ms after Redis was", healthy.elapsed().as_millis());
    assert_eq!(mode(&e), json!("shared"));
}

#[test]
fn a_short_fault_costs_a_short_degraded_period() {
    let server = Server::start();
    let e = Engine::new(config_at(
        &server.url(),
        "short",
        json!({"on_error": "closed", "timeout_ms": 100}),
    ))
    .unwrap();
    call(&e).unwrap();
    server.signal("STOP");
    assert_eq!(call(&e).err().map(|e| e.code()), Some("store_unavailable"));
    server.signal("CONT");
    let healed = Instant::now();
    while call(&e).is_err() {
        assert!(healed.elapsed() < Duration::from_secs(5), "never recovered");
        std::thread::sleep(Duration::from_millis(2));
    }
    let degraded = healed.elapsed();
    eprintln!(
        "a 100 ms fault: shared again {} ms after it ended",
        degraded.as_millis()
    );
    assert!(degraded < Duration::from_millis(400), "degraded for {degraded:?}");
}

fn tls_url(server: &Server, password: &str) -> String {
    format!("rediss://:{password}@127.0.0.1:{}/0", server.port)
}

fn cert(name: &str) -> String {
    certs().join(name).display().to_string()
}

#[test]
fn tls_with_a_private_ca_and_a_password() {
    let server = Server::start_tls("secret", false);
    let store = json!({"on_error": "closed", "timeout_ms": 1000, "tls": {"ca_file": cert("ca.pem")}});
    let (e, took) = timed(|| Engine::new(config_at(&tls_url(&server, "secret"), "tls", store.clone())));
    let e = e.unwrap();
    eprintln!(
        "TLS: construction (connect, handshake, AUTH, register) in {} ms",
        took.as_millis()
    );
    for _ in 0..10 {
        call(&e).unwrap();
    }
    let evalsha = server.calls("evalsha");
    eprintln!("TLS: cmdstat_evalsha:calls={evalsha}");
    assert!(evalsha >= 21, "{evalsha} script calls over TLS");
    assert_eq!(mode(&e), json!("shared"));
    // Killed connections over TLS are retried on fresh ones too.
    let _ = server.cli(&["client", "kill", "type", "normal"]);
    let (r, took) = timed(|| call(&e));
    r.unwrap();
    eprintln!(
        "TLS: a call after CLIENT KILL (a fresh connection and handshake) in {} ms",
        took.as_millis()
    );
    assert_eq!(mode(&e), json!("shared"));
    // A user name in the URL (the default user).
    let url = format!("rediss://default:secret@127.0.0.1:{}/0", server.port);
    let e = Engine::new(config_at(&url, "tls", store)).unwrap();
    call(&e).unwrap();
}

#[test]
fn tls_with_a_client_certificate() {
    let server = Server::start_tls("secret", true);
    let with_cert = json!({"on_error": "closed", "timeout_ms": 1000,
        "tls": {"ca_file": cert("ca.pem"), "cert_file": cert("client.pem"), "key_file": cert("client.key")}});
    let e = Engine::new(config_at(&tls_url(&server, "secret"), "mtls", with_cert)).unwrap();
    call(&e).unwrap();
    assert!(server.calls("evalsha") >= 3);
    // Without one, the server refuses the handshake.
    let without = json!({"on_error": "closed", "timeout_ms": 1000, "tls": {"ca_file": cert("ca.pem")}});
    let err = Engine::new(config_at(&tls_url(&server, "secret"), "mtls", without)).expect_err("no client cert");
    eprintln!("mTLS without a client certificate: {err}");
    assert_eq!(err.code(), "store_unavailable");
}

#[test]
fn tls_failures_are_clear_and_keep_the_password_secret() {
    let server = Server::start_tls("s3cr3t-pw", false);
    let url = tls_url(&server, "s3cr3t-pw");
    let cases = [
        ("another CA", json!({"ca_file": cert("other-ca.pem")})),
        // The system trust store does not know the test CA.
        ("the system trust store", Value::Null),
    ];
    for (what, tls) in cases {
        let store = json!({"on_error": "closed", "timeout_ms": 1000, "tls": tls});
        let err = Engine::new(config_at(&url, "tls-bad", store)).expect_err("an unknown CA was trusted");
        eprintln!("TLS with {what}: {err}");
        assert_eq!(err.code(), "store_unavailable");
        let text = err.to_string();
        assert!(!text.contains("s3cr3t-pw"), "{text}");
        assert!(text.contains("rediss://:***@127.0.0.1"), "{text}");
        assert!(text.to_lowercase().contains("certificate"), "{text}");
    }
    // A wrong password: refused by the server, and not printed either.
    let store = json!({"on_error": "closed", "timeout_ms": 1000, "tls": {"ca_file": cert("ca.pem")}});
    let err = Engine::new(config_at(&tls_url(&server, "hunter2"), "tls-bad", store)).expect_err("bad password");
    eprintln!("TLS with a wrong password: {err}");
    assert_eq!(err.code(), "store_unavailable");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    // TLS files that cannot be read are invalid_config naming the key and the path.
    for key in ["ca_file", "cert_file"] {
        let mut tls =
            json!({"ca_file": cert("ca.pem"), "cert_file": cert("client.pem"), "key_file": cert("client.key")});
        tls[key] = json!("/nonexistent/ratewise.pem");
        let store = json!({"on_error": "local", "tls": tls});
        let err = Engine::new(config_at(&url, "tls-bad", store)).expect_err("a missing file");
        eprintln!("TLS with a missing {key}: {err}");
        assert_eq!(err.code(), "invalid_config");
        assert!(
            err.to_string().starts_with(&format!("store.tls.{key}: "))
                && err.to_string().contains("/nonexistent/ratewise.pem"),
            "{err}"
        );
    }
}

#[test]
fn a_password_never_appears_in_an_error_a_snapshot_or_a_debug_print() {
    // Nothing listens on port 1; then a server that wants another password.
    let server = Server::start_with(&["--requirepass", "right"]);
    for url in [
        "redis://:hunter2@127.0.0.1:1/0".to_string(),
        format!("redis://:hunter2@127.0.0.1:{}/0", server.port),
        format!("redis://someone:hunter2@127.0.0.1:{}/0", server.port),
    ] {
        let c = config_at(&url, "redact", json!({"on_error": "closed", "timeout_ms": 500}));
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        let err = Engine::new(c).expect_err("connected");
        eprintln!("{url}: {err}");
        assert_eq!(err.code(), "store_unavailable");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("127.0.0.1"), "{err}");
        let c = config_at(&url, "redact", json!({"on_error": "local", "timeout_ms": 500}));
        let e = Engine::new(c).unwrap();
        assert!(!e.snapshot().to_string().contains("hunter2"));
    }
    assert_eq!(
        ratewise::redact_url("rediss://user:pa%40ss@host:6380/2"),
        "rediss://user:***@host:6380/2"
    );
}
