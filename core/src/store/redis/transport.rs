//! The connection pool: blocking connections to Redis, every call bounded by one deadline,
//! `timeout_ms` from its start (connecting, loading the script, the call, a retry).
//! Without the cargo feature `redis` there is no transport, and a redis store cannot be opened.

#[cfg(feature = "redis")]
mod pool {
    use parking_lot::Mutex;
    use std::time::{Duration, Instant};

    use super::super::{Fail, wire::Item};
    use crate::config::{StoreTls, redact_url};
    use crate::error::Error;

    /// Idle connections and the generation they belong to. The first connection found closed
    /// by the server (a restart, an idle `timeout`, `CLIENT KILL`) ends its generation: the
    /// other idle ones are closed too and dropped unused, and connections of that generation
    /// still in use are dropped when they come back.
    #[derive(Default)]
    struct Pool {
        generation: u64,
        idle: Vec<redis::Connection>,
    }

    /// A pool of blocking connections. A connection whose call failed is dropped (a late reply
    /// may still be on its way), never reused.
    pub(crate) struct Transport {
        /// The URL as printed, its password redacted.
        shown: String,
        /// The password, scrubbed from any message that might echo it.
        password: Option<String>,
        client: redis::Client,
        timeout: Duration,
        connect_timeout: Duration,
        pool: Mutex<Pool>,
        script: redis::Script,
    }

    /// Why `invoke` failed, and whether on its first command (nothing of this call reached
    /// Redis before: the connection can be replaced and the call sent again).
    struct Failed {
        error: redis::RedisError,
        first: bool,
    }

    /// The time left before `deadline`, or a timeout error when it has passed.
    fn left(deadline: Instant) -> redis::RedisResult<Duration> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the call's deadline passed").into());
        }
        Ok(left)
    }

    /// Runs one command with the time left before `deadline` as its read and write timeouts.
    fn query(con: &mut redis::Connection, cmd: &redis::Cmd, deadline: Instant) -> redis::RedisResult<redis::Value> {
        let left = left(deadline)?;
        con.set_read_timeout(Some(left))?;
        con.set_write_timeout(Some(left))?;
        cmd.query(con)
    }

    /// A connection the server closed while it sat idle: the first read or write of it fails at
    /// once with end of file, a reset or a broken pipe. A timeout is no such error (the server
    /// may be executing the call), nor is a reply error.
    fn closed_by_server(e: &redis::RedisError) -> bool {
        e.is_connection_dropped() && !e.is_timeout()
    }

    /// Reads a PEM file of `store.tls`; a file that cannot be read is `invalid_config` naming
    /// the key and the path.
    fn read_pem(key: &str, path: &std::path::Path) -> crate::Result<Vec<u8>> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::InvalidConfig(format!("store.tls.{key}: cannot read {}: {e}", path.display())))?;
        if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
            return Err(Error::InvalidConfig(format!(
                "store.tls.{key}: {} holds no PEM block",
                path.display()
            )));
        }
        Ok(bytes)
    }

    impl Transport {
        /// A transport for `url` (connects lazily). `tls` files are read now.
        pub fn open(
            url: &str,
            timeout_ms: i64,
            connect_timeout_ms: i64,
            tls: Option<&StoreTls>,
        ) -> crate::Result<Transport> {
            let bad = |e: redis::RedisError| Error::InvalidConfig(format!("store.url: not a usable Redis URL ({e})"));
            if url.starts_with("rediss://") || url.starts_with("valkeys://") {
                // rustls needs a process-wide crypto provider; keep one the host installed.
                let _ = rustls::crypto::ring::default_provider().install_default();
            }
            let info = redis::IntoConnectionInfo::into_connection_info(url).map_err(bad)?;
            // No `CLIENT SETINFO` when connecting: a round trip less, and its replies, whose
            // timeouts the client ignores, would each wait a whole socket timeout on a stopped
            // server (twice the deadline).
            let settings = info.redis_settings().clone().set_skip_set_lib_name();
            let info = info.set_redis_settings(settings);
            let client = match tls {
                None => redis::Client::open(info).map_err(bad)?,
                Some(files) => {
                    let root_cert = files.ca_file.as_deref().map(|p| read_pem("ca_file", p)).transpose()?;
                    let client_tls = match (&files.cert_file, &files.key_file) {
                        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                            client_cert: read_pem("cert_file", cert)?,
                            client_key: read_pem("key_file", key)?,
                        }),
                        _ => None,
                    };
                    redis::Client::build_with_tls(info, redis::TlsCertificates { client_tls, root_cert })
                        .map_err(|e| Error::InvalidConfig(format!("store.tls: {e}")))?
                }
            };
            let ms = |v: i64| Duration::from_millis(u64::try_from(v).unwrap_or(50).max(1));
            Ok(Transport {
                shown: redact_url(url),
                password: client
                    .get_connection_info()
                    .redis_settings()
                    .password()
                    .filter(|p| !p.is_empty())
                    .map(str::to_string),
                client,
                timeout: ms(timeout_ms),
                connect_timeout: ms(connect_timeout_ms),
                pool: Mutex::new(Pool::default()),
                script: redis::Script::new(super::super::SCRIPT),
            })
        }

        /// What a failed call reports: the redacted URL and the error, with no password in it.
        fn unavailable(&self, e: &redis::RedisError) -> Fail {
            let what = if e.is_timeout() {
                format!(
                    "no answer in time (timeout_ms {}, connect_timeout_ms {})",
                    self.timeout.as_millis(),
                    self.connect_timeout.as_millis()
                )
            } else {
                e.to_string()
            };
            let what = match &self.password {
                Some(p) => what.replace(p.as_str(), "***"),
                None => what,
            };
            Fail::Unavailable(format!("Redis at {}: {what}", self.shown))
        }

        /// A new connection, set up (TLS, AUTH, SELECT) within the connect timeout and the
        /// time left.
        fn connect(&self, deadline: Instant) -> redis::RedisResult<redis::Connection> {
            let bound = left(deadline)?.min(self.connect_timeout);
            self.client.get_connection_with_timeout(bound)
        }

        /// EVALSHA, and on NOSCRIPT SCRIPT LOAD and EVALSHA again, each with the time left.
        fn invoke(
            &self,
            con: &mut redis::Connection,
            anchor: &str,
            args: &[String],
            deadline: Instant,
        ) -> Result<redis::Value, Failed> {
            let mut evalsha = redis::cmd("EVALSHA");
            evalsha.arg(self.script.get_hash()).arg(1).arg(anchor).arg(args);
            let failed = |first| move |error| Failed { error, first };
            match query(con, &evalsha, deadline) {
                Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                    let mut load = redis::cmd("SCRIPT");
                    load.arg("LOAD").arg(super::super::SCRIPT);
                    query(con, &load, deadline).map_err(failed(false))?;
                    query(con, &evalsha, deadline).map_err(failed(false))
                }
                other => other.map_err(failed(true)),
            }
        }

        /// Runs the script on a fresh connection, pooled afterwards.
        fn on_fresh(&self, anchor: &str, args: &[String], deadline: Instant) -> redis::RedisResult<redis::Value> {
            let generation = self.pool.lock().generation;
            let mut con = self.connect(deadline)?;
            let value = self.invoke(&mut con, anchor, args, deadline).map_err(|f| f.error)?;
            self.put_back(generation, con);
            Ok(value)
        }

        fn put_back(&self, generation: u64, con: redis::Connection) {
            let mut pool = self.pool.lock();
            if pool.generation == generation {
                pool.idle.push(con);
            } else {
                drop(pool);
                drop(con);
            }
        }

        /// Ends `generation`: its idle connections are as dead as the one just found closed.
        fn retire(&self, generation: u64) {
            let idle = {
                let mut pool = self.pool.lock();
                if pool.generation != generation {
                    return;
                }
                pool.generation += 1;
                std::mem::take(&mut pool.idle)
            };
            drop(idle);
        }

        /// Runs the script within `timeout_ms`. A pooled connection the server closed while it
        /// sat idle is replaced by a fresh one and the call sent once more (within the same
        /// deadline), so that a restart, an idle timeout or `CLIENT KILL` costs no call.
        pub fn eval(&self, anchor: &str, args: &[String]) -> Result<Vec<Item>, Fail> {
            // The deadline is measured on the monotonic clock of the I/O itself, not on the
            // engine's clock (which may be manual or the server's).
            let deadline = Instant::now() + self.timeout;
            let popped = {
                let mut pool = self.pool.lock();
                let generation = pool.generation;
                pool.idle.pop().map(|c| (generation, c))
            };
            let value = match popped {
                None => self.on_fresh(anchor, args, deadline),
                Some((generation, mut con)) => match self.invoke(&mut con, anchor, args, deadline) {
                    Ok(value) => {
                        self.put_back(generation, con);
                        Ok(value)
                    }
                    Err(Failed { error, first: true }) if closed_by_server(&error) => {
                        drop(con);
                        self.retire(generation);
                        self.on_fresh(anchor, args, deadline)
                    }
                    Err(failed) => Err(failed.error),
                },
            }
            .map_err(|e| self.unavailable(&e))?;
            let redis::Value::Array(values) = value else {
                return Err(Fail::Unavailable(format!(
                    "unexpected reply from the script: {value:?}"
                )));
            };
            values
                .into_iter()
                .map(|v| match v {
                    redis::Value::Int(n) => Ok(Item::Int(n)),
                    redis::Value::BulkString(b) => Ok(Item::Str(String::from_utf8_lossy(&b).into_owned())),
                    redis::Value::SimpleString(s) => Ok(Item::Str(s)),
                    other => Err(Fail::Unavailable(format!(
                        "unexpected value in the script's reply: {other:?}"
                    ))),
                })
                .collect()
        }
    }
}

#[cfg(not(feature = "redis"))]
mod pool {
    use super::super::{Fail, wire::Item};
    use crate::config::StoreTls;
    use crate::error::Error;

    /// Without the `redis` feature there is no transport: a redis store cannot be opened.
    pub(crate) enum Transport {}

    impl Transport {
        pub fn open(
            _url: &str,
            _timeout_ms: i64,
            _connect_timeout_ms: i64,
            _tls: Option<&StoreTls>,
        ) -> crate::Result<Transport> {
            Err(Error::StoreUnavailable(
                "this build of ratewise has no redis store (enable the cargo feature `redis`)".into(),
            ))
        }

        pub fn eval(&self, _anchor: &str, _args: &[String]) -> Result<Vec<Item>, Fail> {
            match *self {}
        }
    }
}

pub(crate) use pool::Transport;
