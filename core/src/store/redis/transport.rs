//! The connection pool: blocking connections to Redis, each I/O step bounded by `timeout_ms`.
//! Without the cargo feature `redis` there is no transport, and a redis store cannot be opened.

#[cfg(feature = "redis")]
mod pool {
    use parking_lot::Mutex;
    use std::time::Duration;

    use super::super::{Fail, wire::Item};
    use crate::error::Error;

    /// A pool of blocking connections, each bounded by the timeout; a connection that failed
    /// is dropped (a late reply may still be on its way), never reused.
    pub(crate) struct Transport {
        url: String,
        client: redis::Client,
        timeout: Duration,
        pool: Mutex<Vec<redis::Connection>>,
        script: redis::Script,
    }

    impl Transport {
        pub fn open(url: &str, timeout_ms: i64) -> crate::Result<Transport> {
            let client = redis::Client::open(url)
                .map_err(|e| Error::InvalidConfig(format!("store.url: not a usable Redis URL ({e})")))?;
            Ok(Transport {
                // The address only: a URL may carry a password.
                url: client.get_connection_info().addr().to_string(),
                client,
                timeout: Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(50)),
                pool: Mutex::new(Vec::new()),
                script: redis::Script::new(super::super::SCRIPT),
            })
        }

        fn connect(&self) -> Result<redis::Connection, Fail> {
            let unavailable = |e: redis::RedisError| Fail::Unavailable(format!("Redis at {}: {e}", self.url));
            let con = self
                .client
                .get_connection_with_timeout(self.timeout)
                .map_err(unavailable)?;
            con.set_read_timeout(Some(self.timeout)).map_err(unavailable)?;
            con.set_write_timeout(Some(self.timeout)).map_err(unavailable)?;
            Ok(con)
        }

        pub fn eval(&self, anchor: &str, args: &[String]) -> Result<Vec<Item>, Fail> {
            let popped = self.pool.lock().pop();
            let mut con = match popped {
                Some(c) => c,
                None => self.connect()?,
            };
            let mut inv = self.script.prepare_invoke();
            inv.key(anchor);
            inv.arg(args);
            let value: redis::Value = inv
                .invoke(&mut con)
                .map_err(|e| Fail::Unavailable(format!("Redis at {}: {e}", self.url)))?;
            self.pool.lock().push(con);
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
    use crate::error::Error;

    /// Without the `redis` feature there is no transport: a redis store cannot be opened.
    pub(crate) enum Transport {}

    impl Transport {
        pub fn open(_url: &str, _timeout_ms: i64) -> crate::Result<Transport> {
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
