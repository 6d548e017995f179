//! The SQL both metadata stores share. sqlx accepts `$N` placeholders for
//! SQLite as well as Postgres, so one text serves both; [`sql_store!`] writes
//! the [`MetadataStore`](super::MetadataStore) impl once for each pool type.
//! `$int` is the Rust type of the `INTEGER` columns (channels, rates): `i64`
//! in SQLite, `i32` in Postgres.

/// Statuses of sessions that are not finished: still recording, or ended but
/// not yet stored. Their owner's heartbeat keeps them from being taken over.
pub(super) const UNFINISHED: &str = "('live', 'pending_upload')";

macro_rules! sql_store {
    ($store:ty, $int:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::meta::MetadataStore for $store {
            async fn create_session(
                &self,
                r: &$crate::storage::meta::SessionRecord,
                owner: &str,
                now_ms: i64,
            ) -> Result<(), $crate::storage::StorageError> {
                let done = sqlx::query(
                    "INSERT INTO sessions (id, user_id, engine, language, encoding, channels, \
                     input_rate, engine_rate, status, started_at_ms, instance_id, heartbeat_at_ms) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, 'live', $9, $10, $11 \
                     WHERE NOT EXISTS (SELECT 1 FROM deleted_sessions WHERE id = $1)",
                )
                .bind(&r.id)
                .bind(&r.user_id)
                .bind(&r.engine)
                .bind(&r.language)
                .bind(&r.encoding)
                .bind(<$int>::from(r.channels))
                .bind(<$int>::try_from(r.input_rate).unwrap_or(<$int>::MAX))
                .bind(<$int>::try_from(r.engine_rate).unwrap_or(<$int>::MAX))
                .bind(r.started_at_ms)
                .bind(owner)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::storage::StorageError::Deleted(r.id.clone()));
                }
                Ok(())
            }

            async fn is_deleted(
                &self,
                session_id: &str,
            ) -> Result<bool, $crate::storage::StorageError> {
                let found: Option<i32> =
                    sqlx::query_scalar("SELECT 1 FROM deleted_sessions WHERE id = $1")
                        .bind(session_id)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(found.is_some())
            }

            async fn add_segment(
                &self,
                session_id: &str,
                s: &$crate::storage::meta::FinalSegment,
            ) -> Result<(), $crate::storage::StorageError> {
                let invalid = |e: serde_json::Error| $crate::storage::StorageError::Invalid(e.to_string());
                let words = serde_json::to_string(&s.words).map_err(invalid)?;
                let entities = if s.entities.is_empty() {
                    None
                } else {
                    Some(serde_json::to_string(&s.entities).map_err(invalid)?)
                };
                sqlx::query(
                    "INSERT INTO segments \
                     (session_id, seq, result_id, start_s, end_s, text, words_json, entities_json) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (session_id, seq) DO NOTHING",
                )
                .bind(session_id)
                .bind(i64::from(s.seq))
                .bind(&s.result_id)
                .bind(s.start)
                .bind(s.end)
                .bind(&s.text)
                .bind(words)
                .bind(entities)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn segments(
                &self,
                session_id: &str,
            ) -> Result<Vec<$crate::storage::meta::FinalSegment>, $crate::storage::StorageError>
            {
                let rows = sqlx::query(
                    "SELECT seq, result_id, start_s, end_s, text, words_json, entities_json FROM segments \
                     WHERE session_id = $1 ORDER BY seq",
                )
                .bind(session_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map($crate::storage::meta::rows::segment).collect()
            }

            async fn get_session(
                &self,
                session_id: &str,
            ) -> Result<Option<$crate::storage::meta::SessionRow>, $crate::storage::StorageError>
            {
                let row = sqlx::query("SELECT * FROM sessions WHERE id = $1")
                    .bind(session_id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref()
                    .map($crate::storage::meta::rows::session::<_, $int>)
                    .transpose()
            }

            async fn list_sessions(
                &self,
                user_id: &str,
                limit: u32,
                before: Option<&$crate::storage::meta::SessionCursor>,
            ) -> Result<Vec<$crate::storage::meta::SessionRow>, $crate::storage::StorageError>
            {
                // Keyset paging on (started_at_ms, id): stable while sessions
                // are added or deleted, and served by sessions_user_started.
                let rows = match before {
                    None => {
                        sqlx::query(
                            "SELECT * FROM sessions WHERE user_id = $1 \
                             ORDER BY started_at_ms DESC, id DESC LIMIT $2",
                        )
                        .bind(user_id)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?
                    }
                    Some(cursor) => {
                        sqlx::query(
                            "SELECT * FROM sessions WHERE user_id = $1 \
                             AND (started_at_ms, id) < ($2, $3) \
                             ORDER BY started_at_ms DESC, id DESC LIMIT $4",
                        )
                        .bind(user_id)
                        .bind(cursor.started_at_ms)
                        .bind(&cursor.id)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?
                    }
                };
                rows.iter()
                    .map($crate::storage::meta::rows::session::<_, $int>)
                    .collect()
            }

            async fn delete_session(
                &self,
                session_id: &str,
                deleted_at_ms: i64,
            ) -> Result<bool, $crate::storage::StorageError> {
                let mut tx = self.pool.begin().await?;
                // The tombstone goes in with the delete: nothing left behind
                // (a spool, chunks) can bring the session back.
                sqlx::query(
                    "INSERT INTO deleted_sessions (id, user_id, deleted_at_ms) \
                     SELECT id, user_id, $2 FROM sessions WHERE id = $1 \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(session_id)
                .bind(deleted_at_ms)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM segments WHERE session_id = $1")
                    .bind(session_id)
                    .execute(&mut *tx)
                    .await?;
                let done = sqlx::query("DELETE FROM sessions WHERE id = $1")
                    .bind(session_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn update_received(
                &self,
                session_id: &str,
                received_bytes: u64,
            ) -> Result<(), $crate::storage::StorageError> {
                sqlx::query("UPDATE sessions SET received_bytes = $1 WHERE id = $2")
                    .bind(received_bytes as i64)
                    .bind(session_id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn finish_session(
                &self,
                session_id: &str,
                o: &$crate::storage::meta::SessionOutcome,
            ) -> Result<(), $crate::storage::StorageError> {
                // An event once per session: a session stored again (a fuller
                // copy after a recovery) does not announce itself twice.
                sqlx::query(
                    "UPDATE sessions SET status = $1, close_reason = $2, ended_at_ms = $3, \
                     received_bytes = $4, duration_s = $5, audio_key = $6, transcript_key = $7, \
                     manifest_key = $8, \
                     event_state = COALESCE(event_state, CASE WHEN $9 THEN 'pending' END) \
                     WHERE id = $10",
                )
                .bind(o.status.as_str())
                .bind(&o.close_reason)
                .bind(o.ended_at_ms)
                .bind(o.received_bytes as i64)
                .bind(o.duration_s)
                .bind(&o.audio_key)
                .bind(&o.transcript_key)
                .bind(&o.manifest_key)
                .bind(o.notify)
                .bind(session_id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn mark_pending(
                &self,
                session_id: &str,
                close_reason: &str,
                ended_at_ms: i64,
            ) -> Result<(), $crate::storage::StorageError> {
                sqlx::query(
                    "UPDATE sessions SET status = 'pending_upload', close_reason = $1, \
                     ended_at_ms = $2 WHERE id = $3 AND status = 'live'",
                )
                .bind(close_reason)
                .bind(ended_at_ms)
                .bind(session_id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn heartbeat(
                &self,
                owner: &str,
                now_ms: i64,
            ) -> Result<u64, $crate::storage::StorageError> {
                let sql = format!(
                    "UPDATE sessions SET heartbeat_at_ms = $1 WHERE instance_id = $2 AND status IN {}",
                    $crate::storage::meta::sql::UNFINISHED
                );
                let done = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(now_ms)
                    .bind(owner)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn claim_session(
                &self,
                session_id: &str,
                owner: &str,
                now_ms: i64,
            ) -> Result<(), $crate::storage::StorageError> {
                sqlx::query(
                    "UPDATE sessions SET instance_id = $1, heartbeat_at_ms = $2 WHERE id = $3",
                )
                .bind(owner)
                .bind(now_ms)
                .bind(session_id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn stale_sessions(
                &self,
                cutoff_ms: i64,
                limit: u32,
            ) -> Result<Vec<String>, $crate::storage::StorageError> {
                let sql = format!(
                    "SELECT id FROM sessions WHERE status IN {} \
                     AND (heartbeat_at_ms IS NULL OR heartbeat_at_ms < $1) \
                     ORDER BY started_at_ms LIMIT $2",
                    $crate::storage::meta::sql::UNFINISHED
                );
                Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .bind(cutoff_ms)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn take_over(
                &self,
                session_id: &str,
                owner: &str,
                cutoff_ms: i64,
                now_ms: i64,
            ) -> Result<bool, $crate::storage::StorageError> {
                // Compare-and-set: of several instances trying at once, one wins.
                let sql = format!(
                    "UPDATE sessions SET instance_id = $1, heartbeat_at_ms = $2 \
                     WHERE id = $3 AND status IN {} \
                     AND (heartbeat_at_ms IS NULL OR heartbeat_at_ms < $4)",
                    $crate::storage::meta::sql::UNFINISHED
                );
                let done = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(owner)
                    .bind(now_ms)
                    .bind(session_id)
                    .bind(cutoff_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn pending_events(
                &self,
                limit: u32,
            ) -> Result<Vec<$crate::storage::meta::SessionRow>, $crate::storage::StorageError>
            {
                let rows = sqlx::query(
                    "SELECT * FROM sessions WHERE event_state = 'pending' \
                     ORDER BY ended_at_ms LIMIT $1",
                )
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map($crate::storage::meta::rows::session::<_, $int>)
                    .collect()
            }

            async fn mark_event_sent(
                &self,
                session_id: &str,
            ) -> Result<(), $crate::storage::StorageError> {
                sqlx::query("UPDATE sessions SET event_state = 'sent' WHERE id = $1")
                    .bind(session_id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn ping(&self) -> Result<(), $crate::storage::StorageError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn migrations(
                &self,
            ) -> Result<$crate::storage::meta::MigrationStatus, $crate::storage::StorageError> {
                let applied: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                        .fetch_one(&self.pool)
                        .await?;
                let total = MIGRATOR.iter().count();
                let applied = applied as usize;
                Ok($crate::storage::meta::MigrationStatus {
                    applied,
                    pending: total.saturating_sub(applied),
                })
            }

            fn describe(&self) -> String {
                self.label()
            }
        }
    };
}

pub(super) use sql_store;
