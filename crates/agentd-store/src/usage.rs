//! Usage summed from runs' derived rows.

use std::collections::HashMap;

use async_trait::async_trait;

use crate::queries::*;
use crate::sql::{Backend, Exec};
use crate::store::{SqlStore, work};
use crate::*;

/// What runs used, from the journal's derived rows.
#[async_trait]
pub trait UsageStore: Send + Sync + 'static {
    /// Runs of one organisation created in `[from, to)` (of one user, one
    /// project when given), at most `max`; their tool calls are counted only
    /// when `tool_calls` (it reads the journal).
    #[allow(clippy::too_many_arguments)]
    async fn run_usage(
        &self,
        org: &str,
        user: Option<&str>,
        project: Option<&str>,
        from: &str,
        to: &str,
        max: u32,
        tool_calls: bool,
    ) -> Result<Vec<RunUsage>>;
}

#[async_trait]
impl<B: Backend> UsageStore for SqlStore<B> {
    async fn run_usage(
        &self,
        org: &str,
        user: Option<&str>,
        project: Option<&str>,
        from: &str,
        to: &str,
        max: u32,
        tool_calls: bool,
    ) -> Result<Vec<crate::RunUsage>> {
        let (org, user, from, to) = (org.to_string(), user.map(str::to_string), from.to_string(), to.to_string());
        let project = project.map(str::to_string);
        self.db
            .read(work(move |e| {
                Box::pin(async move {
                    run_usage(e, &org, user.as_deref(), project.as_deref(), &from, &to, max, tool_calls).await
                })
            }))
            .await
    }
}

#[allow(clippy::too_many_arguments)] // the trait's filter, one statement
pub(crate) async fn run_usage(
    e: &mut dyn Exec,
    org: &str,
    user: Option<&str>,
    project: Option<&str>,
    from: &str,
    to: &str,
    max: u32,
    tool_calls: bool,
) -> Result<Vec<crate::RunUsage>> {
    let within = args![org, user, from, to, project];
    let rows = e
        .query(
            "SELECT id, usr, model, agent, usage, cost_usd, created_at FROM runs
             WHERE org = $1 AND ($2 IS NULL OR usr = $2) AND created_at >= $3 AND created_at < $4
               AND ($6 IS NULL OR project = $6)
             ORDER BY id LIMIT $5",
            args![org, user, from, to, max.clamp(1, 100_000), project],
        )
        .await?;
    let calls = if tool_calls {
        e.query(
            "SELECT e.run_id, count(*) AS n FROM events e JOIN runs r ON r.id = e.run_id
                 WHERE r.org = $1 AND ($2 IS NULL OR r.usr = $2) AND r.created_at >= $3 AND r.created_at < $4
                   AND e.type = $5 AND ($6 IS NULL OR r.project = $6)
                 GROUP BY e.run_id",
            &[within[0], within[1], within[2], within[3], agentd_core::EventType::ToolResult.name().into(), within[4]],
        )
        .await?
    } else {
        vec![]
    };
    let mut per_run = HashMap::new();
    for r in &calls {
        per_run.insert(r.get::<String>("run_id")?, r.get::<i64>("n")?);
    }
    all(rows, |r| {
        let id: String = r.get("id")?;
        Ok(crate::RunUsage {
            tool_calls: 0,
            run_id: id,
            user: r.get("usr")?,
            model: r.get("model")?,
            agent: r.get("agent")?,
            usage: r.json("usage")?,
            cost_usd: r.get("cost_usd")?,
            created_at: r.get("created_at")?,
        })
    })
    .map(|mut v| {
        for u in &mut v {
            u.tool_calls = per_run.get(&u.run_id).copied().unwrap_or(0);
        }
        v
    })
}
