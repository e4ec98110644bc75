//! [`Sqlite`]: the embedded store, one SQLite file in WAL mode with one
//! connection (SQLite has one writer anyway; reads are short). The file is
//! created 0600 in a 0700 directory: it holds token hashes and job output.

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension as _, params};

use super::{EventRecord, JobFilter, JobRecord, JobState, Store, StoreError, TokenRecord};

/// The schema; `user_version` says which one a file holds.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tokens (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    targets TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER,
    revoked_ms INTEGER,
    callback_secret TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    operation TEXT NOT NULL,
    targets TEXT NOT NULL,
    state TEXT NOT NULL,
    request TEXT NOT NULL,
    report TEXT,
    error TEXT,
    created_ms INTEGER NOT NULL,
    started_ms INTEGER,
    finished_ms INTEGER,
    idempotency_key TEXT,
    request_hash TEXT NOT NULL,
    callback_url TEXT,
    callback_state TEXT,
    request_id TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_time ON jobs (created_ms DESC, id DESC);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_by_key ON jobs (token, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    job TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (job, seq)
) WITHOUT ROWID;
PRAGMA user_version = 2;
";

/// What turns a store of an older schema into the current one, by the
/// version it holds.
const MIGRATIONS: [(i64, &str); 1] = [
    // 2: a job keeps the id of the request that created it.
    (1, "ALTER TABLE jobs ADD COLUMN request_id TEXT;"),
];

/// The embedded store.
pub struct Sqlite {
    /// The file, for messages.
    path: PathBuf,
    /// The one connection.
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqlite").field("path", &self.path).finish()
    }
}

impl Sqlite {
    /// Opens (creating when missing) the store at `path`.
    ///
    /// # Errors
    ///
    /// The directory or the file cannot be made or opened, or holds a
    /// newer schema.
    pub fn open(path: &Path) -> Result<Sqlite, StoreError> {
        let db = |message: String| StoreError::Db {
            path: path.display().to_string(),
            message,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| db(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(|e| db(e.to_string()))?;
        // Private: it holds token hashes, callback secrets and job output.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| db(e.to_string()))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| db(e.to_string()))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| db(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| db(e.to_string()))?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|e| db(e.to_string()))?;
        if version > 2 {
            return Err(db(format!(
                "schema version {version} is newer than this remex knows (2); use a newer remex"
            )));
        }
        for (from, migration) in MIGRATIONS {
            if version != 0 && version <= from {
                conn.execute_batch(migration)
                    .map_err(|e| db(e.to_string()))?;
            }
        }
        conn.execute_batch(SCHEMA).map_err(|e| db(e.to_string()))?;
        Ok(Sqlite {
            path: path.to_owned(),
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn err(&self, e: &rusqlite::Error) -> StoreError {
        StoreError::Db {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }
}

/// The columns of `jobs`, in [`job_from_row`]'s order.
const JOB_COLUMNS: &str = "id, token, operation, targets, state, request, report, error, \
     created_ms, started_ms, finished_ms, idempotency_key, request_hash, callback_url, callback_state, \
     request_id";

fn job_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobRecord> {
    let state: String = row.get(4)?;
    Ok(JobRecord {
        id: row.get(0)?,
        token: row.get(1)?,
        operation: row.get(2)?,
        targets: row.get(3)?,
        state: JobState::parse(&state).unwrap_or(JobState::Error),
        request: row.get(5)?,
        report: row.get(6)?,
        error: row.get(7)?,
        created_ms: row.get(8)?,
        started_ms: row.get(9)?,
        finished_ms: row.get(10)?,
        idempotency_key: row.get(11)?,
        request_hash: row.get(12)?,
        callback_url: row.get(13)?,
        callback_state: row.get(14)?,
        request_id: row.get(15)?,
    })
}

fn token_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    let scopes: String = row.get(2)?;
    Ok(TokenRecord {
        name: row.get(0)?,
        hash: row.get(1)?,
        scopes: scopes
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        targets: row.get(3)?,
        created_ms: row.get(4)?,
        expires_ms: row.get(5)?,
        revoked_ms: row.get(6)?,
        callback_secret: row.get(7)?,
    })
}

const TOKEN_COLUMNS: &str =
    "name, hash, scopes, targets, created_ms, expires_ms, revoked_ms, callback_secret";

impl Store for Sqlite {
    fn insert_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        let done = self.conn().execute(
            "INSERT INTO tokens (name, hash, scopes, targets, created_ms, expires_ms, revoked_ms, callback_secret)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                t.name,
                t.hash,
                t.scopes.join(","),
                t.targets,
                t.created_ms,
                t.expires_ms,
                t.revoked_ms,
                t.callback_secret
            ],
        );
        match done {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::Exists(format!("a token named `{}`", t.name)))
            }
            Err(e) => Err(self.err(&e)),
        }
    }

    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.conn()
            .query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = ?1"),
                [hash],
                token_from_row,
            )
            .optional()
            .map_err(|e| self.err(&e))
    }

    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY name"))
            .map_err(|e| self.err(&e))?;
        let rows = stmt
            .query_map([], token_from_row)
            .map_err(|e| self.err(&e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(&e))
    }

    fn revoke_token(&self, name: &str, at_ms: i64) -> Result<(), StoreError> {
        let changed = self
            .conn()
            .execute(
                "UPDATE tokens SET revoked_ms = ?2 WHERE name = ?1 AND revoked_ms IS NULL",
                params![name, at_ms],
            )
            .map_err(|e| self.err(&e))?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("active token named `{name}`")));
        }
        Ok(())
    }

    fn insert_job(&self, j: &JobRecord) -> Result<(), StoreError> {
        let done = self.conn().execute(
            &format!(
                "INSERT INTO jobs ({JOB_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
            ),
            params![
                j.id,
                j.token,
                j.operation,
                j.targets,
                j.state.as_str(),
                j.request,
                j.report,
                j.error,
                j.created_ms,
                j.started_ms,
                j.finished_ms,
                j.idempotency_key,
                j.request_hash,
                j.callback_url,
                j.callback_state,
                j.request_id
            ],
        );
        match done {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::Exists(format!(
                    "job `{}` or its idempotency key",
                    j.id
                )))
            }
            Err(e) => Err(self.err(&e)),
        }
    }

    fn update_job(&self, j: &JobRecord) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE jobs SET state = ?2, report = ?3, error = ?4, started_ms = ?5,
                     finished_ms = ?6, callback_state = ?7 WHERE id = ?1",
                params![
                    j.id,
                    j.state.as_str(),
                    j.report,
                    j.error,
                    j.started_ms,
                    j.finished_ms,
                    j.callback_state
                ],
            )
            .map_err(|e| self.err(&e))?;
        Ok(())
    }

    fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        self.conn()
            .query_row(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
                [id],
                job_from_row,
            )
            .optional()
            .map_err(|e| self.err(&e))
    }

    fn jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>, StoreError> {
        let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE 1 = 1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(state) = filter.state {
            sql.push_str(" AND state = ?");
            args.push(state.as_str().to_owned().into());
        }
        if let Some(operation) = &filter.operation {
            sql.push_str(" AND operation = ?");
            args.push(operation.clone().into());
        }
        if let Some(actor) = &filter.actor {
            sql.push_str(" AND token = ?");
            args.push(actor.clone().into());
        }
        if let Some((created, id)) = &filter.before {
            sql.push_str(" AND (created_ms < ? OR (created_ms = ? AND id < ?))");
            args.push((*created).into());
            args.push((*created).into());
            args.push(id.clone().into());
        }
        sql.push_str(" ORDER BY created_ms DESC, id DESC LIMIT ?");
        args.push(i64::try_from(filter.limit).unwrap_or(i64::MAX).into());
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql).map_err(|e| self.err(&e))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), job_from_row)
            .map_err(|e| self.err(&e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(&e))
    }

    fn job_by_key(&self, token: &str, key: &str) -> Result<Option<JobRecord>, StoreError> {
        self.conn()
            .query_row(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE token = ?1 AND idempotency_key = ?2"
                ),
                [token, key],
                job_from_row,
            )
            .optional()
            .map_err(|e| self.err(&e))
    }

    fn interrupt_unfinished(&self, at_ms: i64) -> Result<Vec<JobRecord>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(&e))?;
        let unfinished: Vec<JobRecord> = {
            let mut stmt = tx
                .prepare(&format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE state IN ('queued', 'running')"
                ))
                .map_err(|e| self.err(&e))?;
            let rows = stmt.query_map([], job_from_row).map_err(|e| self.err(&e))?;
            rows.collect::<Result<_, _>>().map_err(|e| self.err(&e))?
        };
        tx.execute(
            "UPDATE jobs SET state = 'interrupted', finished_ms = ?1,
                 error = 'the service stopped while the job was under way; what it did before is in its events and the audit log'
             WHERE state IN ('queued', 'running')",
            [at_ms],
        )
        .map_err(|e| self.err(&e))?;
        tx.commit().map_err(|e| self.err(&e))?;
        Ok(unfinished)
    }

    fn sweep(&self, before_ms: i64) -> Result<usize, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(&e))?;
        tx.execute(
            "DELETE FROM events WHERE job IN
                 (SELECT id FROM jobs WHERE finished_ms IS NOT NULL AND finished_ms < ?1)",
            [before_ms],
        )
        .map_err(|e| self.err(&e))?;
        let gone = tx
            .execute(
                "DELETE FROM jobs WHERE finished_ms IS NOT NULL AND finished_ms < ?1",
                [before_ms],
            )
            .map_err(|e| self.err(&e))?;
        tx.commit().map_err(|e| self.err(&e))?;
        Ok(gone)
    }

    fn set_callback_state(&self, id: &str, state: &str) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE jobs SET callback_state = ?2 WHERE id = ?1",
                params![id, state],
            )
            .map_err(|e| self.err(&e))?;
        Ok(())
    }

    fn pending_callbacks(&self) -> Result<Vec<JobRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE callback_url IS NOT NULL
                     AND finished_ms IS NOT NULL
                     AND (callback_state IS NULL OR callback_state LIKE 'pending%')
                 ORDER BY finished_ms"
            ))
            .map_err(|e| self.err(&e))?;
        let rows = stmt.query_map([], job_from_row).map_err(|e| self.err(&e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(&e))
    }

    fn append_events(&self, events: &[EventRecord]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(&e))?;
        {
            let mut stmt = tx
                .prepare_cached("INSERT INTO events (job, seq, kind, data) VALUES (?1, ?2, ?3, ?4)")
                .map_err(|e| self.err(&e))?;
            for e in events {
                let seq = i64::try_from(e.seq).unwrap_or(i64::MAX);
                stmt.execute(params![e.job, seq, e.kind, e.data])
                    .map_err(|err| self.err(&err))?;
            }
        }
        tx.commit().map_err(|e| self.err(&e))
    }

    fn events_after(
        &self,
        job: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT job, seq, kind, data FROM events WHERE job = ?1 AND seq > ?2
                 ORDER BY seq LIMIT ?3",
            )
            .map_err(|e| self.err(&e))?;
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![job, after, limit], |row| {
                let seq: i64 = row.get(1)?;
                Ok(EventRecord {
                    job: row.get(0)?,
                    seq: u64::try_from(seq).unwrap_or(0),
                    kind: row.get(2)?,
                    data: row.get(3)?,
                })
            })
            .map_err(|e| self.err(&e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, created_ms: i64, state: JobState) -> JobRecord {
        JobRecord {
            id: id.into(),
            token: "ci".into(),
            operation: "exec".into(),
            targets: "all".into(),
            state,
            request: "{}".into(),
            report: None,
            error: None,
            created_ms,
            started_ms: None,
            finished_ms: state.is_final().then_some(created_ms + 5),
            idempotency_key: None,
            request_hash: "h".into(),
            callback_url: None,
            callback_state: None,
            request_id: Some("req-1".into()),
        }
    }

    fn open() -> (tempfile::TempDir, Sqlite) {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open(&dir.path().join("state/service.db")).unwrap();
        (dir, store)
    }

    #[test]
    fn the_file_is_private_and_reopens() {
        let (dir, store) = open();
        let path = dir.path().join("state/service.db");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("state")), 0o700);
        store.insert_job(&job("j1", 1, JobState::Queued)).unwrap();
        drop(store);
        let again = Sqlite::open(&path).unwrap();
        assert_eq!(again.job("j1").unwrap().unwrap().state, JobState::Queued);
    }

    #[test]
    fn a_store_of_schema_1_gains_the_request_id_and_keeps_its_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("service.db");
        {
            // Schema 1 as it was: the jobs table without `request_id`.
            let conn = Connection::open(&path).unwrap();
            let v1 = SCHEMA
                .replace(",\n    request_id TEXT\n", "\n")
                .replace("user_version = 2", "user_version = 1");
            assert!(!v1.contains("request_id"));
            conn.execute_batch(&v1).unwrap();
            conn.execute(
                "INSERT INTO jobs (id, token, operation, targets, state, request, created_ms, request_hash)
                 VALUES ('old', 'ci', 'exec', 'all', 'succeeded', '{}', 1, 'h')",
                [],
            )
            .unwrap();
        }
        let store = Sqlite::open(&path).unwrap();
        let old = store.job("old").unwrap().unwrap();
        assert_eq!((old.state, old.request_id), (JobState::Succeeded, None));
        store.insert_job(&job("new", 2, JobState::Queued)).unwrap();
        assert_eq!(
            store.job("new").unwrap().unwrap().request_id.as_deref(),
            Some("req-1")
        );
        drop(store);
        // Opened again at schema 2: nothing to migrate.
        assert!(Sqlite::open(&path).is_ok());
    }

    #[test]
    fn tokens_are_unique_by_name_and_found_by_hash() {
        let (_dir, store) = open();
        let token = TokenRecord {
            name: "n8n".into(),
            hash: "abc".into(),
            scopes: vec!["exec".into(), "files:read".into()],
            targets: "web".into(),
            created_ms: 1,
            expires_ms: None,
            revoked_ms: None,
            callback_secret: "s".into(),
        };
        store.insert_token(&token).unwrap();
        assert!(matches!(
            store.insert_token(&token),
            Err(StoreError::Exists(_))
        ));
        assert_eq!(store.token_by_hash("abc").unwrap(), Some(token.clone()));
        store.revoke_token("n8n", 9).unwrap();
        assert_eq!(
            store.token_by_hash("abc").unwrap().unwrap().revoked_ms,
            Some(9)
        );
        assert!(matches!(
            store.revoke_token("n8n", 10),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn jobs_page_newest_first_and_filter() {
        let (_dir, store) = open();
        for i in 0..5 {
            let state = if i % 2 == 0 {
                JobState::Succeeded
            } else {
                JobState::Failed
            };
            store.insert_job(&job(&format!("j{i}"), i, state)).unwrap();
        }
        let page = |before: Option<(i64, String)>, state| {
            store
                .jobs(&JobFilter {
                    state,
                    before,
                    limit: 2,
                    ..JobFilter::default()
                })
                .unwrap()
                .into_iter()
                .map(|j| j.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(page(None, None), ["j4", "j3"]);
        assert_eq!(page(Some((3, "j3".into())), None), ["j2", "j1"]);
        assert_eq!(page(None, Some(JobState::Failed)), ["j3", "j1"]);
    }

    #[test]
    fn unfinished_jobs_are_interrupted_and_old_ones_swept() {
        let (_dir, store) = open();
        store
            .insert_job(&job("done", 1, JobState::Succeeded))
            .unwrap();
        store
            .insert_job(&job("running", 2, JobState::Running))
            .unwrap();
        store
            .append_events(&[EventRecord {
                job: "done".into(),
                seq: 1,
                kind: "job_finished".into(),
                data: "{}".into(),
            }])
            .unwrap();
        let interrupted = store.interrupt_unfinished(50).unwrap();
        assert_eq!(interrupted.len(), 1);
        let running = store.job("running").unwrap().unwrap();
        assert_eq!(running.state, JobState::Interrupted);
        assert_eq!(running.finished_ms, Some(50));
        assert_eq!(store.sweep(10).unwrap(), 1);
        assert!(store.job("done").unwrap().is_none());
        assert!(store.events_after("done", 0, 10).unwrap().is_empty());
        assert!(store.job("running").unwrap().is_some());
    }

    #[test]
    fn unsettled_callbacks_of_finished_jobs_are_pending() {
        let (_dir, store) = open();
        let with = |id: &str, state: JobState, callback: Option<&str>| {
            let mut j = job(id, 1, state);
            j.callback_url = Some("http://127.0.0.1:9/hook".into());
            j.callback_state = callback.map(str::to_owned);
            store.insert_job(&j).unwrap();
        };
        with("never-tried", JobState::Succeeded, None);
        with(
            "retrying",
            JobState::Failed,
            Some("pending: attempt 1 of 6 failed: HTTP 503"),
        );
        with("delivered", JobState::Succeeded, Some("delivered"));
        with(
            "gave-up",
            JobState::Succeeded,
            Some("failed after 6 attempts: no answer"),
        );
        with("running", JobState::Running, None);
        store
            .insert_job(&job("no-callback", 1, JobState::Succeeded))
            .unwrap();
        let ids = |store: &Sqlite| {
            let mut ids: Vec<String> = store
                .pending_callbacks()
                .unwrap()
                .into_iter()
                .map(|j| j.id)
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(ids(&store), ["never-tried", "retrying"]);
        store.set_callback_state("retrying", "delivered").unwrap();
        assert_eq!(ids(&store), ["never-tried"]);
    }

    #[test]
    fn events_resume_after_a_sequence_number() {
        let (_dir, store) = open();
        let events: Vec<EventRecord> = (1..=4)
            .map(|seq| EventRecord {
                job: "j".into(),
                seq,
                kind: "output".into(),
                data: format!("{{\"n\":{seq}}}"),
            })
            .collect();
        store.append_events(&events).unwrap();
        let rest = store.events_after("j", 2, 10).unwrap();
        assert_eq!(rest.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
        let page = store.events_after("j", 0, 3).unwrap();
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    }
}
