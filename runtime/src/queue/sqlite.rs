//! The local provider's task queue: one SQLite file shared by the supervisor and every
//! agent process, with SQS's semantics (visibility timeout as the lease, a receive
//! count, receipt handles that go stale when a lease is lost, a dead-letter queue).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fleetform_core::queue::{Depth, QueueError, Received, TaskQueue};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// How long a process waits for another one's write lock before failing: generous,
/// since every critical section is a handful of row updates.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct SqliteQueue {
    conn: Arc<Mutex<Connection>>,
}

fn backend(e: impl std::fmt::Display) -> QueueError {
    QueueError::Backend(format!("sqlite queue: {e}"))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn dlq(class: &str) -> String {
    format!("{class}-dlq")
}

impl SqliteQueue {
    pub fn open(path: &Path) -> anyhow::Result<SqliteQueue> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path)
            .map_err(|e| anyhow::anyhow!("cannot open the queue database {}: {e}", path.display()))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // Two processes opening a new queue at once (`run` and its first agent) both set up
        // the database. Switching to WAL upgrades a shared lock to an exclusive one, and
        // SQLite answers such an upgrade with SQLITE_BUSY at once, without its busy
        // handler (waiting could deadlock): retry the set-up for a while instead.
        let started = std::time::Instant::now();
        loop {
            match Self::set_up(&conn) {
                Ok(()) => break,
                Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::DatabaseBusy && started.elapsed() < BUSY_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => anyhow::bail!("cannot set up the queue database {}: {e}", path.display()),
            }
        }
        Ok(SqliteQueue { conn: Arc::new(Mutex::new(conn)) })
    }

    /// WAL (readers such as `status` run beside a writer, an agent receiving) and the table.
    fn set_up(conn: &Connection) -> rusqlite::Result<()> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS messages (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 queue TEXT NOT NULL,
                 body TEXT NOT NULL,
                 visible_at INTEGER NOT NULL,
                 receive_count INTEGER NOT NULL DEFAULT 0,
                 receipt TEXT
             );
             CREATE INDEX IF NOT EXISTS messages_by_queue ON messages(queue, visible_at, id);
             CREATE UNIQUE INDEX IF NOT EXISTS messages_by_receipt ON messages(receipt);",
        )
    }

    /// Run `f` on the connection in a blocking thread (rusqlite is synchronous).
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, QueueError> + Send + 'static,
    ) -> Result<T, QueueError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| backend("connection lock poisoned"))?;
            f(&mut guard)
        })
        .await
        .map_err(backend)?
    }
}

impl TaskQueue for SqliteQueue {
    async fn ensure(&self, _class: &str) -> Result<(), QueueError> {
        Ok(()) // queues are rows tagged with their name; nothing to create
    }

    async fn send(&self, class: &str, bodies: &[String]) -> Result<(), QueueError> {
        let class = class.to_string();
        let bodies = bodies.to_vec();
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            {
                let mut stmt = tx
                    .prepare_cached("INSERT INTO messages (queue, body, visible_at) VALUES (?1, ?2, ?3)")
                    .map_err(backend)?;
                let now = now_ms();
                for b in &bodies {
                    stmt.execute(params![class, b, now]).map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn receive(&self, class: &str, max: usize, lease: Duration) -> Result<Vec<Received>, QueueError> {
        let class = class.to_string();
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            let now = now_ms();
            let rows: Vec<(i64, String, u32)> = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT id, body, receive_count FROM messages
                         WHERE queue = ?1 AND visible_at <= ?2 ORDER BY id LIMIT ?3",
                    )
                    .map_err(backend)?;
                let it = stmt
                    .query_map(params![class, now, max as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(backend)?;
                it.collect::<Result<_, _>>().map_err(backend)?
            };
            let mut out = Vec::with_capacity(rows.len());
            for (id, body, count) in rows {
                let receipt = format!("{id}:{}", uuid::Uuid::new_v4());
                tx.execute(
                    "UPDATE messages SET visible_at = ?1, receive_count = receive_count + 1, receipt = ?2 WHERE id = ?3",
                    params![now + lease.as_millis() as i64, receipt, id],
                )
                .map_err(backend)?;
                out.push(Received { handle: receipt, body, receive_count: count + 1 });
            }
            tx.commit().map_err(backend)?;
            Ok(out)
        })
        .await
    }

    async fn extend(&self, _class: &str, handle: &str, lease: Duration) -> Result<(), QueueError> {
        let handle = handle.to_string();
        self.with(move |c| {
            let n = c
                .execute(
                    "UPDATE messages SET visible_at = ?1 WHERE receipt = ?2 AND visible_at > ?3",
                    params![now_ms() + lease.as_millis() as i64, handle, now_ms()],
                )
                .map_err(backend)?;
            if n == 0 {
                Err(QueueError::LeaseLost)
            } else {
                Ok(())
            }
        })
        .await
    }

    async fn release(&self, _class: &str, handle: &str) -> Result<(), QueueError> {
        let handle = handle.to_string();
        self.with(move |c| {
            c.execute("UPDATE messages SET visible_at = ?1 WHERE receipt = ?2", params![now_ms(), handle])
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn delete(&self, _class: &str, handle: &str) -> Result<(), QueueError> {
        // As in SQS, a stale receipt deletes nothing: the message belongs to its new holder.
        let handle = handle.to_string();
        self.with(move |c| {
            c.execute("DELETE FROM messages WHERE receipt = ?1", params![handle]).map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn dead_letter(&self, class: &str, handle: &str, body: &str) -> Result<(), QueueError> {
        let (dlq, handle, body) = (dlq(class), handle.to_string(), body.to_string());
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            let existed: Option<i64> = tx
                .query_row("SELECT id FROM messages WHERE receipt = ?1", params![handle], |r| r.get(0))
                .optional()
                .map_err(backend)?;
            if existed.is_none() {
                return Err(QueueError::LeaseLost);
            }
            tx.execute("DELETE FROM messages WHERE receipt = ?1", params![handle]).map_err(backend)?;
            tx.execute("INSERT INTO messages (queue, body, visible_at) VALUES (?1, ?2, ?3)", params![dlq, body, now_ms()])
                .map_err(backend)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn depth(&self, class: &str) -> Result<Depth, QueueError> {
        let class = class.to_string();
        self.with(move |c| {
            let now = now_ms();
            let (visible, in_flight): (i64, i64) = c
                .query_row(
                    "SELECT COALESCE(SUM(visible_at <= ?2), 0), COALESCE(SUM(visible_at > ?2), 0) FROM messages WHERE queue = ?1",
                    params![class, now],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(backend)?;
            Ok(Depth { visible: visible as u64, in_flight: in_flight as u64 })
        })
        .await
    }

    async fn dead_letters(&self, class: &str) -> Result<Vec<String>, QueueError> {
        let dlq = dlq(class);
        self.with(move |c| {
            let mut stmt = c.prepare("SELECT body FROM messages WHERE queue = ?1 ORDER BY id").map_err(backend)?;
            let it = stmt.query_map(params![dlq], |r| r.get(0)).map_err(backend)?;
            it.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn purge(&self, class: &str) -> Result<(), QueueError> {
        let class = class.to_string();
        self.with(move |c| {
            c.execute("DELETE FROM messages WHERE queue = ?1", params![class]).map_err(backend)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn sqlite_queue_conforms() {
        let d = std::env::temp_dir().join(format!("fleetform-queue-{}", uuid::Uuid::new_v4()));
        let q = super::SqliteQueue::open(&d.join("q.sqlite")).unwrap();
        crate::queue::conformance::run(&q, "default", std::time::Duration::from_millis(200), crate::queue::conformance::StaleHandles::Refused).await;
        let _ = std::fs::remove_dir_all(d);
    }

    /// `fleetform run` and its first agent open a new queue at the same moment.
    #[test]
    fn processes_opening_a_new_queue_at_once_all_succeed() {
        let d = std::env::temp_dir().join(format!("fleetform-queue-open-{}", uuid::Uuid::new_v4()));
        for round in 0..30 {
            let path = d.join(format!("q{round}.sqlite"));
            let start = std::sync::Arc::new(std::sync::Barrier::new(4));
            let openers: Vec<_> = (0..4)
                .map(|_| {
                    let (path, start) = (path.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        super::SqliteQueue::open(&path).map(|_| ())
                    })
                })
                .collect();
            for o in openers {
                o.join().unwrap().unwrap_or_else(|e| panic!("round {round}: {e:#}"));
            }
        }
        let _ = std::fs::remove_dir_all(d);
    }
}
