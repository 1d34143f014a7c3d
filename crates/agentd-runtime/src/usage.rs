//! What an organisation used: tokens, cost, runs and tool calls, grouped by
//! day, model, agent or user, summed from the runs' derived rows.

pub use agentd_core::{UsageReport, UsageRow};
use std::collections::BTreeMap;

use agentd_core::ErrorCode;

use crate::{Runtime, RuntimeError};

/// Most runs one report reads.
const MAX_RUNS: u32 = 100_000;

/// A bound as stored: RFC 3339 as given, or a `YYYY-MM-DD` day at midnight UTC.
fn bound(v: &str, what: &str) -> Result<String, RuntimeError> {
    let parsed = chrono::DateTime::parse_from_rfc3339(v).map(|d| d.with_timezone(&chrono::Utc)).or_else(|_| {
        chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
    });
    parsed.map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)).map_err(|_| {
        RuntimeError::bad(ErrorCode::InvalidQuery, format!("`{what}` must be an RFC 3339 time or a YYYY-MM-DD day"))
    })
}

fn add(row: &mut UsageRow, u: &agentd_store::RunUsage) {
    row.runs += 1;
    row.input_tokens += u.usage.input_tokens;
    row.output_tokens += u.usage.output_tokens;
    row.total_tokens += u.usage.total_tokens;
    row.cost_usd += u.cost_usd.unwrap_or(0.0);
    row.tool_calls += u64::try_from(u.tool_calls).unwrap_or(0);
}

impl Runtime {
    /// Why the tenant's org may not use the model any more today (its
    /// `tokens_per_day` or `cost_usd_per_day` is used up), if so.
    pub(crate) async fn over_budget(
        &self,
        t: &agentd_core::Tenant,
    ) -> Result<Option<String>, agentd_store::StoreError> {
        let l = self.org_limits(&t.org).await?;
        if l.tokens_per_day.is_none() && l.cost_usd_per_day.is_none() {
            return Ok(None);
        }
        let today = chrono::Utc::now().date_naive().and_time(chrono::NaiveTime::MIN).and_utc();
        let from = today.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let runs = self.store.run_usage(&t.org, None, None, &from, "9999-12-31T23:59:59.999Z", MAX_RUNS, false).await?;
        let tokens: u64 = runs.iter().map(|r| r.usage.total_tokens).sum();
        let cost: f64 = runs.iter().map(|r| r.cost_usd.unwrap_or(0.0)).sum();
        if let Some(max) = l.tokens_per_day
            && tokens >= max
        {
            return Ok(Some(format!("organisation {} used {tokens} of its {max} tokens today (UTC)", t.org)));
        }
        if let Some(max) = l.cost_usd_per_day
            && cost >= max
        {
            return Ok(Some(format!("organisation {} spent ${cost:.4} of its ${max:.4} today (UTC)", t.org)));
        }
        Ok(None)
    }

    /// The organisation's usage over `[from, to)` (default: the last 30
    /// days), of one user when `user` is given, grouped by `day` (default),
    /// `model`, `agent` or `user`; of one project when `project` is given
    /// (a key bound to a project sees nothing of the others).
    pub async fn usage(
        &self,
        org: &str,
        user: Option<&str>,
        project: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
        group_by: Option<&str>,
    ) -> Result<UsageReport, RuntimeError> {
        let group_by = group_by.unwrap_or("day");
        if !["day", "model", "agent", "user"].contains(&group_by) {
            return Err(RuntimeError::bad(ErrorCode::InvalidQuery, "`group_by` must be day, model, agent or user"));
        }
        let to = match to {
            Some(v) => bound(v, "to")?,
            None => agentd_store::now(),
        };
        let from = match from {
            Some(v) => bound(v, "from")?,
            None => agentd_store::ago(std::time::Duration::from_secs(30 * 86_400)),
        };
        let runs = self.store.run_usage(org, user, project, &from, &to, MAX_RUNS + 1, true).await?;
        let truncated = runs.len() > MAX_RUNS as usize;
        let mut groups: BTreeMap<String, UsageRow> = BTreeMap::new();
        let mut total = UsageRow { key: "total".into(), ..Default::default() };
        for u in runs.iter().take(MAX_RUNS as usize) {
            let key = match group_by {
                "day" => u.created_at.get(..10).unwrap_or_default().to_string(),
                "model" => u.model.clone(),
                "agent" => u.agent.clone(),
                _ => u.user.clone(),
            };
            add(groups.entry(key.clone()).or_insert_with(|| UsageRow { key, ..Default::default() }), u);
            add(&mut total, u);
        }
        Ok(UsageReport { from, to, group_by: group_by.into(), data: groups.into_values().collect(), total, truncated })
    }
}
