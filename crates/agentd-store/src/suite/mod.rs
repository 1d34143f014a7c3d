//! The behaviour every [`Store`] implementation must have. Each backend's
//! tests call these functions with a fresh, empty store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test suite: a failed step is a failed test

use std::sync::Arc;

use agentd_core::{ContentPart, EventKind, Message, Role, RunError, RunStatus, Tenant, Usage};

use crate::{EventQuery, NewRun, Page, RunFilter, Store, StoreError};

mod access;
mod documents;
pub use access::*;
pub use documents::*;

/// One `#[tokio::test]` per function of the suite, each over a fresh store:
/// `$fresh` is an expression (awaited inside the test) that gives
/// `(something to keep alive, Arc<dyn Store>)`. Both backends' test files
/// call it, so the list lives here once.
#[macro_export]
macro_rules! suite_tests {
    ($fresh:expr) => {
        $crate::suite_tests!(@each $fresh; append_derives_rows, terminal_runs_are_sealed, tenant_scope_on_every_query, concurrent_appends_are_gap_free, listing_and_deletion, guarded_appends, claiming_respects_lanes_limits_and_leases, per_org_caps_replace_the_default, busy_sessions_reject, prune_removes_old_finished_runs, http_tools_are_tenant_scoped, documents_are_capped_paged_and_read_by_name, agent_versions_are_bounded, direct_calls_are_journaled, approvals_pause_and_resume_runs, a_long_backlog_never_hides_another_tenant, secrets_are_masked_on_every_write, api_keys_are_stored_as_hashes, secrets_are_tenant_scoped, usage_counts_runs_and_tool_calls, trees_are_capped_and_listed_whole);
    };
    (@each $fresh:expr; $($name:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread")]
        async fn $name() {
            let (_keep, s) = $fresh;
            $crate::suite::$name(s).await;
        }
    )*};
}

fn tenant(org: &str) -> Tenant {
    Tenant { org: org.into(), user: "u".into(), project: "p".into() }
}

async fn new_run(s: &dyn Store, t: &Tenant, session: Option<&str>) -> (String, String) {
    let sid = match session {
        Some(s) => s.to_string(),
        None => s.create_session(t, Some("t".into()), serde_json::json!({})).await.expect("session").id,
    };
    let nr = NewRun::new(sid.clone(), "hello", "m/x", 4);
    let (run, ev) = s.create_run(t, &nr).await.expect("create run");
    assert_eq!(run.status, RunStatus::Queued);
    assert_eq!((ev.seq, ev.event_type()), (1, Some(agentd_core::EventType::RunCreated)));
    (sid, nr.id)
}

fn assistant(text: &str) -> EventKind {
    EventKind::LlmCompleted {
        step: 1,
        message: Message::text(Role::Assistant, text),
        usage: Usage { input_tokens: 3, output_tokens: 2, total_tokens: 5 },
        finish_reason: "stop".into(),
        provider: "p".into(),
        model: "m".into(),
        profile: None,
        cost_usd: None,
        usage_estimated: false,
    }
}

/// Appends get gap-free sequence numbers and update the derived rows.
pub async fn append_derives_rows(s: Arc<dyn Store>) {
    let t = tenant("a");
    let (sid, id) = new_run(&*s, &t, None).await;
    let evs = s
        .append(&t, &id, &[EventKind::RunStarted { node: "n".into() }, EventKind::StepStarted { step: 1 }])
        .await
        .unwrap();
    assert_eq!(evs.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(s.get_run(&t, &id).await.unwrap().unwrap().status, RunStatus::Running);
    s.append(&t, &id, &[assistant("hi"), assistant("again")]).await.unwrap();
    let tool = EventKind::ToolResult {
        call_id: "c1".into(),
        name: "echo".into(),
        content: vec![ContentPart::text("{}")],
        is_error: false,
        status: agentd_core::ToolStatus::Ok,
        duration_ms: 1,
        sandbox: None,
        children: vec![],
    };
    s.append(&t, &id, &[tool]).await.unwrap();
    s.append(&t, &id, &[EventKind::RunCompleted { output: "again".into(), usage: Usage::default() }]).await.unwrap();
    let run = s.get_run(&t, &id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.output.as_deref(), Some("again"));
    assert_eq!(run.usage.total_tokens, 10);
    assert_eq!(run.last_seq, 7);
    let msgs = s.session_messages(&t, &sid).await.unwrap();
    let roles: Vec<Role> = msgs.iter().map(|m| m.message.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant, Role::Assistant, Role::Tool]);
    assert_eq!(msgs.iter().map(|m| m.index).collect::<Vec<_>>(), [0, 1, 2, 3]);
    assert_eq!(msgs[3].message.tool_call_id.as_deref(), Some("c1"));
    let all = s.events(&t, &id, &EventQuery { after: 0, limit: 100, types: None }).await.unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=7).collect::<Vec<_>>());
    let only =
        EventQuery { after: 0, limit: 100, types: Some(vec![agentd_core::EventType::LlmCompleted.name().into()]) };
    assert_eq!(s.events(&t, &id, &only).await.unwrap().len(), 2);
    let page = s.events(&t, &id, &EventQuery { after: 5, limit: 1, types: None }).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [6]);
    // The stored data rebuilds the same event.
    let back = EventKind::from_parts(&all[3].type_name, all[3].data.clone()).unwrap();
    assert_eq!(back, assistant("hi"));
}

/// Nothing is appended once a run is terminal; the failed batch leaves no trace.
pub async fn terminal_runs_are_sealed(s: Arc<dyn Store>) {
    let t = tenant("a");
    let (sid, id) = new_run(&*s, &t, None).await;
    s.append(&t, &id, &[EventKind::RunCancelled { reason: Some("stop".into()) }]).await.unwrap();
    let err = s.append(&t, &id, &[assistant("late")]).await.unwrap_err();
    assert!(matches!(err, StoreError::RunFinished), "{err}");
    let err = s.append(&t, &id, &[EventKind::RunFailed { error: RunError::new("x", "y") }]).await.unwrap_err();
    assert!(matches!(err, StoreError::RunFinished));
    let run = s.get_run(&t, &id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    assert_eq!(run.error.unwrap().code, "cancelled");
    assert_eq!(run.last_seq, 2);
    assert!(s.session_messages(&t, &sid).await.unwrap().is_empty(), "the late assistant message was not stored");
    // A batch that would go past a terminal event is refused whole.
    let (_, id2) = new_run(&*s, &t, None).await;
    let batch = [EventKind::RunCompleted { output: "x".into(), usage: Usage::default() }, assistant("after")];
    assert!(matches!(s.append(&t, &id2, &batch).await, Err(StoreError::RunFinished)));
    assert_eq!(s.get_run(&t, &id2).await.unwrap().unwrap().last_seq, 1);
}

/// Another tenant sees nothing and changes nothing.
pub async fn tenant_scope_on_every_query(s: Arc<dyn Store>) {
    let a = tenant("a");
    let (sid, id) = new_run(&*s, &a, None).await;
    for other in
        [tenant("b"), Tenant { project: "other".into(), ..a.clone() }, Tenant { user: "v".into(), ..a.clone() }]
    {
        assert!(s.get_run(&other, &id).await.unwrap().is_none());
        assert!(s.get_session(&other, &sid).await.unwrap().is_none());
        assert!(s.session_messages(&other, &sid).await.unwrap().is_empty());
        assert!(s.events(&other, &id, &EventQuery { after: 0, limit: 10, types: None }).await.unwrap().is_empty());
        assert!(s.list_runs(&other, &RunFilter::default(), &Page { after: None, limit: 10 }).await.unwrap().is_empty());
        assert!(s.list_sessions(&other, &Page { after: None, limit: 10 }).await.unwrap().is_empty());
        assert!(matches!(s.append(&other, &id, &[assistant("x")]).await, Err(StoreError::NotFound)));
        assert!(!s.delete_session(&other, &sid).await.unwrap());
        let nr = NewRun::new(sid.clone(), "x", "m", 1);
        assert!(matches!(s.create_run(&other, &nr).await, Err(StoreError::NotFound)));
    }
    assert_eq!(s.get_run(&a, &id).await.unwrap().unwrap().last_seq, 1);
    s.append(&a, &id, &[EventKind::RunStarted { node: "n".into() }]).await.unwrap();
    assert_eq!(s.session_messages(&a, &sid).await.unwrap().len(), 1, "the input joins the session when the run starts");
}

/// Concurrent appends to one run never share or skip a sequence number.
pub async fn concurrent_appends_are_gap_free(s: Arc<dyn Store>) {
    let t = tenant("a");
    let (_, id) = new_run(&*s, &t, None).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40u32 {
        let (s, t, id) = (s.clone(), t.clone(), id.clone());
        tasks.spawn(async move { s.append(&t, &id, &[EventKind::StepStarted { step: i }]).await.map(|v| v.len()) });
    }
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.unwrap().unwrap(), 1);
    }
    let evs = s.events(&t, &id, &EventQuery { after: 0, limit: 1000, types: None }).await.unwrap();
    assert_eq!(evs.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=41).collect::<Vec<_>>());
}

/// Listing, pagination, filters, deletion and the recovery query.
pub async fn listing_and_deletion(s: Arc<dyn Store>) {
    let t = tenant("a");
    let (sid, r1) = new_run(&*s, &t, None).await;
    let (_, r2) = new_run(&*s, &t, Some(&sid)).await;
    let (other_sid, r3) = new_run(&*s, &t, None).await;
    s.append(&t, &r1, &[EventKind::RunCompleted { output: "x".into(), usage: Usage::default() }]).await.unwrap();
    let all = s.list_runs(&t, &RunFilter::default(), &Page { after: None, limit: 10 }).await.unwrap();
    assert_eq!(all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [&r3, &r2, &r1], "newest first");
    let p1 = s.list_runs(&t, &RunFilter::default(), &Page { after: None, limit: 2 }).await.unwrap();
    let p2 = s.list_runs(&t, &RunFilter::default(), &Page { after: Some(p1[1].id.clone()), limit: 2 }).await.unwrap();
    assert_eq!(p2.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [&r1]);
    let in_session = RunFilter { session_id: Some(sid.clone()), status: None, ..Default::default() };
    assert_eq!(s.list_runs(&t, &in_session, &Page { after: None, limit: 10 }).await.unwrap().len(), 2);
    let queued = RunFilter { session_id: None, status: Some(RunStatus::Queued), ..Default::default() };
    assert_eq!(s.list_runs(&t, &queued, &Page { after: None, limit: 10 }).await.unwrap().len(), 2);
    let unfinished = s.unfinished_runs().await.unwrap();
    let mut ids: Vec<&str> = unfinished.iter().map(|(_, r)| r.id.as_str()).collect();
    ids.sort();
    let mut want = vec![r2.as_str(), r3.as_str()];
    want.sort();
    assert_eq!(ids, want);
    assert!(unfinished.iter().all(|(tt, _)| tt == &t));

    assert!(s.delete_session(&t, &sid).await.unwrap());
    assert!(s.get_run(&t, &r1).await.unwrap().is_none());
    assert!(s.events(&t, &r2, &EventQuery { after: 0, limit: 10, types: None }).await.unwrap().is_empty());
    assert!(s.session_messages(&t, &sid).await.unwrap().is_empty());
    assert!(s.get_run(&t, &r3).await.unwrap().is_some(), "other sessions untouched");
    assert!(s.get_session(&t, &other_sid).await.unwrap().is_some());
    let nr = NewRun::new(sid, "x", "m", 1);
    assert!(matches!(s.create_run(&t, &nr).await, Err(StoreError::NotFound)));
}

fn claim(max: u32, per_tenant: u32, lease_ms: i64) -> crate::ClaimLimits {
    crate::ClaimLimits { max, per_tenant, lease_ms, ..Default::default() }
}

/// Appends can require the writer's lease and an unchanged journal end.
pub async fn guarded_appends(s: Arc<dyn Store>) {
    use crate::AppendGuard;
    let t = tenant("a");
    let (_, id) = new_run(&*s, &t, None).await;
    let held = AppendGuard { lease_node: Some("n1".into()), expected_seq: None };
    assert!(matches!(
        s.append_guarded(&t, &id, &held, &[EventKind::StepStarted { step: 1 }]).await,
        Err(StoreError::LeaseLost)
    ));
    let claimed = s.claim_runs("n1", &claim(10, 10, 60_000)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    s.append_guarded(&t, &id, &held, &[EventKind::StepStarted { step: 1 }]).await.unwrap();
    let stale = AppendGuard { lease_node: Some("n2".into()), expected_seq: None };
    assert!(matches!(
        s.append_guarded(&t, &id, &stale, &[EventKind::StepStarted { step: 2 }]).await,
        Err(StoreError::LeaseLost)
    ));
    let exact = AppendGuard { lease_node: Some("n1".into()), expected_seq: Some(2) };
    s.append_guarded(&t, &id, &exact, &[EventKind::StepStarted { step: 2 }]).await.unwrap();
    // Someone else wrote (seq 3 is now taken): the stale expectation is refused.
    match s.append_guarded(&t, &id, &exact, &[EventKind::StepStarted { step: 3 }]).await {
        Err(StoreError::SeqConflict { last_seq }) => assert_eq!(last_seq, 3),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(s.get_run(&t, &id).await.unwrap().unwrap().last_seq, 3);
}

/// One run per session lane, per-tenant limits, fairness, lease expiry.
pub async fn claiming_respects_lanes_limits_and_leases(s: Arc<dyn Store>) {
    let a = tenant("a");
    let b = tenant("b");
    // Session 1 of tenant a has two runs: only the first is claimable.
    let (s1, a1) = new_run(&*s, &a, None).await;
    let (_, a2) = new_run(&*s, &a, Some(&s1)).await;
    let (_, a3) = new_run(&*s, &a, None).await;
    let (_, a4) = new_run(&*s, &a, None).await;
    let (_, b1) = new_run(&*s, &b, None).await;
    // Per-tenant limit 2, max 3: a gets two, b gets one, round-robin.
    let got = s.claim_runs("n1", &claim(3, 2, 60_000)).await.unwrap();
    let mut ids: Vec<&str> = got.iter().map(|(_, r)| r.id.as_str()).collect();
    ids.sort();
    let mut want = vec![a1.as_str(), a3.as_str(), b1.as_str()];
    want.sort();
    assert_eq!(ids, want, "a2 waits behind a1 in its lane; a4 is over a's limit");
    assert!(got.iter().any(|(t, _)| t == &b));
    // Leased runs are not claimed again, by anyone.
    assert!(s.claim_runs("n2", &claim(10, 2, 60_000)).await.unwrap().is_empty(), "a is at its limit, a2 blocked");
    // Finish a1: its lane moves on to a2 (a has one slot again).
    s.append(&a, &a1, &[EventKind::RunCompleted { output: "x".into(), usage: Usage::default() }]).await.unwrap();
    let got = s.claim_runs("n2", &claim(10, 2, 60_000)).await.unwrap();
    assert_eq!(got.iter().map(|(_, r)| r.id.as_str()).collect::<Vec<_>>(), [a2.as_str()]);
    // Renewal reports what a node no longer holds.
    let lost = s.renew_leases("n1", &[a1.clone(), a3.clone(), a2.clone()], 60_000).await.unwrap();
    let mut lost_sorted = lost.clone();
    lost_sorted.sort();
    let mut want = vec![a1.clone(), a2.clone()];
    want.sort();
    assert_eq!(lost_sorted, want, "a1 finished, a2 belongs to n2");
    // Released or expired leases are claimable again.
    assert_eq!(s.release_leases("n1", Some(std::slice::from_ref(&a3))).await.unwrap(), 1);
    let got = s.claim_runs("n3", &claim(10, 10, 1)).await.unwrap();
    let ids: Vec<&str> = got.iter().map(|(_, r)| r.id.as_str()).collect();
    assert!(ids.contains(&a3.as_str()) && ids.contains(&a4.as_str()), "{ids:?}");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let again = s.claim_runs("n4", &claim(10, 10, 60_000)).await.unwrap();
    assert!(again.iter().any(|(_, r)| r.id == a3), "an expired lease is taken over");
    assert_eq!(s.release_leases("n4", None).await.unwrap() as usize, again.len());
}

/// An organisation's own cap (`concurrent_runs`) replaces the default, lower or higher.
pub async fn per_org_caps_replace_the_default(s: Arc<dyn Store>) {
    let (a, b, c) = (tenant("a"), tenant("b"), tenant("c"));
    for t in [&a, &b, &c] {
        for _ in 0..4 {
            new_run(&*s, t, None).await;
        }
    }
    let mut limits = claim(20, 2, 60_000);
    limits.per_org.insert("a".into(), 1);
    limits.per_org.insert("b".into(), 3);
    let got = s.claim_runs("n1", &limits).await.unwrap();
    let count = |org: &str| got.iter().filter(|(t, _)| t.org == org).count();
    assert_eq!((count("a"), count("b"), count("c")), (1, 3, 2), "a below, b above, c at the default");
    assert!(s.claim_runs("n2", &limits).await.unwrap().is_empty(), "every org is at its cap");
}

/// `reject_if_busy` refuses a second unfinished run in a session atomically.
pub async fn busy_sessions_reject(s: Arc<dyn Store>) {
    let t = tenant("a");
    let (sid, first) = new_run(&*s, &t, None).await;
    assert_eq!(s.active_run(&t, &sid).await.unwrap().unwrap().id, first);
    let nr = NewRun { reject_if_busy: true, ..NewRun::new(sid.clone(), "x", "m", 1) };
    match s.create_run(&t, &nr).await {
        Err(StoreError::SessionBusy(active)) => assert_eq!(active, first),
        other => panic!("expected busy, got {other:?}"),
    }
    s.append(&t, &first, &[EventKind::RunCancelled { reason: None }]).await.unwrap();
    assert!(s.active_run(&t, &sid).await.unwrap().is_none());
    s.create_run(&t, &nr).await.unwrap();
}

/// Pruning removes only finished runs older than the cutoff, within scope.
pub async fn prune_removes_old_finished_runs(s: Arc<dyn Store>) {
    use crate::PruneScope;
    let a = tenant("a");
    let b = tenant("b");
    let (sa, done_a) = new_run(&*s, &a, None).await;
    let (_, open_a) = new_run(&*s, &a, None).await;
    let (sb, done_b) = new_run(&*s, &b, None).await;
    for (t, id) in [(&a, &done_a), (&b, &done_b)] {
        s.append(t, id, &[EventKind::RunCompleted { output: "x".into(), usage: Usage::default() }]).await.unwrap();
    }
    // A cutoff in the past removes nothing.
    let none = s.prune("2000-01-01T00:00:00.000Z", &PruneScope::default()).await.unwrap();
    assert_eq!(none, crate::PruneStats::default());
    let future = crate::ago(std::time::Duration::ZERO).replace("20", "30");
    let only_b = s.prune(&future, &PruneScope { org: None, except_orgs: vec!["a".into()] }).await.unwrap();
    assert_eq!((only_b.runs, only_b.events, only_b.sessions), (1, 2, 1));
    assert!(s.get_session(&b, &sb).await.unwrap().is_none());
    let rest = s.prune(&future, &PruneScope { org: Some("a".into()), except_orgs: vec![] }).await.unwrap();
    assert_eq!((rest.runs, rest.events), (1, 2));
    assert!(s.get_run(&a, &done_a).await.unwrap().is_none());
    assert!(s.get_run(&a, &open_a).await.unwrap().is_some(), "unfinished runs are never pruned");
    assert_eq!(rest.sessions, 1, "the finished run's session went with it; the open one stays");
    assert!(s.get_session(&a, &sa).await.unwrap().is_none());
}

/// Direct tool calls are journaled per tenant and listed newest first.
pub async fn direct_calls_are_journaled(s: Arc<dyn Store>) {
    let a = tenant("a");
    for i in 0..3 {
        let call = crate::DirectCall {
            id: agentd_core::new_id("call"),
            session_id: (i == 2).then(|| "ses_x".to_string()),
            tool: "echo".into(),
            arguments: serde_json::json!({"i": i}),
            content: vec![ContentPart::text(format!("{i}"))],
            is_error: false,
            duration_ms: 1,
            created_at: crate::now(),
        };
        s.record_tool_call(&a, &call).await.unwrap();
    }
    let all = s.list_tool_calls(&a, None, &Page { after: None, limit: 10 }).await.unwrap();
    assert_eq!(all.iter().map(|c| c.arguments["i"].as_i64().unwrap()).collect::<Vec<_>>(), [2, 1, 0]);
    let one = s.list_tool_calls(&a, Some("ses_x"), &Page { after: None, limit: 10 }).await.unwrap();
    assert_eq!(one.len(), 1);
    let page2 = s.list_tool_calls(&a, None, &Page { after: Some(all[0].id.clone()), limit: 1 }).await.unwrap();
    assert_eq!(page2[0].id, all[1].id);
    assert!(s.list_tool_calls(&tenant("b"), None, &Page { after: None, limit: 10 }).await.unwrap().is_empty());
}

fn ask(approval_id: &str, call_id: &str, key: &str, expires_at: Option<String>) -> EventKind {
    EventKind::ApprovalRequested {
        approval_id: approval_id.into(),
        call_id: call_id.into(),
        tool: "shell".into(),
        arguments_sanitized: serde_json::json!({"commands": [["rm", "-rf", "x"]]}),
        approval_key: key.into(),
        risk: agentd_core::policy::Risk::High,
        reasons: vec!["rm -rf".into()],
        rule: "high_risk".into(),
        expires_at,
    }
}

fn answer(decision: &str) -> agentd_core::Resolution {
    let decision = agentd_core::Decision::parse(decision).expect("a known decision");
    agentd_core::Resolution { decision, reason: Some("because".into()), arguments: None, resolved_by: None }
}

/// Approvals are derived rows: a request pauses the run and frees its lease;
/// answers are journaled once; the last answer queues the run again.
pub async fn approvals_pause_and_resume_runs(s: Arc<dyn Store>) {
    use crate::{ApprovalFilter, ClaimLimits};
    let (t, other) = (tenant("a"), tenant("b"));
    let (sid, id) = new_run(&*s, &t, None).await;
    let limits = ClaimLimits { max: 10, per_tenant: 10, lease_ms: 60_000, ..Default::default() };
    assert_eq!(s.claim_runs("n1", &limits).await.unwrap().len(), 1);
    let guard = crate::AppendGuard { lease_node: Some("n1".into()), expected_seq: None };
    s.append_guarded(&t, &id, &guard, &[EventKind::RunStarted { node: "n1".into() }]).await.unwrap();
    let past = crate::ago(std::time::Duration::from_secs(60));
    let evs = [ask("apr_1", "c1", "k1", None), ask("apr_2", "c2", "k2", Some(past))];
    s.append_guarded(&t, &id, &guard, &evs).await.unwrap();
    assert_eq!(s.get_run(&t, &id).await.unwrap().unwrap().status, RunStatus::WaitingApproval);
    // Nobody holds a waiting run and nobody may claim it.
    assert!(matches!(s.append_guarded(&t, &id, &guard, &[assistant("x")]).await, Err(StoreError::LeaseLost)));
    assert!(s.claim_runs("n2", &limits).await.unwrap().is_empty());
    // A later run of the same session waits behind it.
    let nr = NewRun::new(sid.clone(), "next", "m/x", 4);
    s.create_run(&t, &nr).await.unwrap();
    assert!(s.claim_runs("n2", &limits).await.unwrap().is_empty());
    assert_eq!(s.active_run(&t, &sid).await.unwrap().unwrap().id, id);

    let pending = ApprovalFilter {
        run_id: Some(id.clone()),
        status: Some(agentd_core::ApprovalStatus::Pending),
        ..Default::default()
    };
    let page = Page { after: None, limit: 50 };
    let listed = s.list_approvals(&t, &pending, &page).await.unwrap();
    assert_eq!(listed.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["apr_1", "apr_2"]);
    assert_eq!((listed[0].session_id.as_str(), listed[0].risk.as_str()), (sid.as_str(), "high"));
    assert_eq!(listed[0].reasons, ["rm -rf"]);
    assert!(s.list_approvals(&other, &ApprovalFilter::default(), &page).await.unwrap().is_empty());
    assert!(s.get_approval(&other, "apr_1").await.unwrap().is_none());
    assert!(matches!(s.resolve_approval(&other, "apr_1", &answer("deny")).await, Err(StoreError::NotFound)));

    let due = s.expired_approvals(&crate::now(), 10).await.unwrap();
    assert_eq!(due.iter().map(|(_, id)| id.as_str()).collect::<Vec<_>>(), ["apr_2"]);

    let by_key = agentd_core::Resolution { resolved_by: Some("key_1".into()), ..answer("approve_for_session") };
    let (a, evs) = s.resolve_approval(&t, "apr_1", &by_key).await.unwrap();
    assert_eq!((a.status.as_str(), a.decision.map(|d| d.as_str())), ("approved", Some("approve_for_session")));
    assert_eq!(a.resolved_by.as_deref(), Some("key_1"), "who answered is kept on the row");
    assert_eq!(evs[0].data["resolved_by"], "key_1", "and in the journal");
    assert_eq!(evs[0].event_type(), Some(agentd_core::EventType::ApprovalResolved));
    assert_eq!(evs[0].data["remaining"], 1);
    assert_eq!(s.get_run(&t, &id).await.unwrap().unwrap().status, RunStatus::WaitingApproval);
    assert!(matches!(
        s.resolve_approval(&t, "apr_1", &answer("deny")).await,
        Err(StoreError::NotPending(st)) if st == "approved"
    ));
    assert!(s.session_grant(&t, &sid, "k1").await.unwrap());
    assert!(!s.session_grant(&t, &sid, "k2").await.unwrap());
    assert!(!s.session_grant(&other, &sid, "k1").await.unwrap());

    let (a, _) = s.resolve_approval(&t, "apr_2", &answer("expired")).await.unwrap();
    assert_eq!((a.status.as_str(), a.decision.map(|d| d.as_str())), ("expired", Some("expired")));
    assert_eq!(a.resolved_by, None);
    assert_eq!(s.get_run(&t, &id).await.unwrap().unwrap().status, RunStatus::Queued);
    assert_eq!(s.claim_runs("n2", &limits).await.unwrap().len(), 1, "queued again and claimable");

    // A run that ends cancels what is still pending.
    let (_, id2) = new_run(&*s, &t, None).await;
    s.append(&t, &id2, &[EventKind::RunStarted { node: "n".into() }, ask("apr_3", "c", "k", None)]).await.unwrap();
    s.append(&t, &id2, &[EventKind::RunCancelled { reason: None }]).await.unwrap();
    assert_eq!(s.get_approval(&t, "apr_3").await.unwrap().unwrap().status, agentd_core::ApprovalStatus::Cancelled);
    assert!(matches!(s.resolve_approval(&t, "apr_3", &answer("approve")).await, Err(StoreError::NotPending(_))));
}

/// Hardening finding 10: behind a backlog of one organisation far longer
/// than a claim looks at, another organisation's run is claimed at once.
pub async fn a_long_backlog_never_hides_another_tenant(s: Arc<dyn Store>) {
    let (big, small) = (tenant("big"), tenant("small"));
    for _ in 0..400 {
        new_run(&*s, &big, None).await;
    }
    let (_, late) = new_run(&*s, &small, None).await;
    let got = s.claim_runs("n1", &claim(2, 1000, 60_000)).await.unwrap();
    let ids: Vec<&str> = got.iter().map(|(_, r)| r.id.as_str()).collect();
    assert!(ids.contains(&late.as_str()), "the other organisation's run waits behind 400: {ids:?}");
    // An organisation at its limit takes no candidate slots from the others.
    let (_, later) = new_run(&*s, &tenant("third"), None).await;
    let got = s.claim_runs("n1", &claim(1, 1, 60_000)).await.unwrap();
    assert_eq!(got.iter().map(|(_, r)| r.id.as_str()).collect::<Vec<_>>(), [later.as_str()]);
}

/// Usage reads runs of one organisation in a period, with their tool calls.
pub async fn usage_counts_runs_and_tool_calls(s: Arc<dyn Store>) {
    let (a, b) = (tenant("a"), tenant("b"));
    let (_, id) = new_run(&*s, &a, None).await;
    new_run(&*s, &b, None).await;
    let tool = |call: &str| EventKind::ToolResult {
        call_id: call.into(),
        name: "echo".into(),
        content: vec![ContentPart::text("{}")],
        is_error: false,
        status: agentd_core::ToolStatus::Ok,
        duration_ms: 1,
        sandbox: None,
        children: vec![],
    };
    s.append(&a, &id, &[EventKind::RunStarted { node: "n".into() }, assistant("hi"), tool("c1"), tool("c2")])
        .await
        .unwrap();
    let from = crate::ago(std::time::Duration::from_secs(60));
    let to = crate::ago(std::time::Duration::ZERO);
    let got = s.run_usage("a", None, None, &from, "9999-12-31T00:00:00.000Z", 100, true).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].run_id.as_str(), got[0].tool_calls, got[0].usage.total_tokens), (id.as_str(), 2, 5));
    assert!(
        s.run_usage("a", Some("nobody"), None, &from, "9999-12-31T00:00:00.000Z", 100, true).await.unwrap().is_empty()
    );
    assert!(s.run_usage("a", None, None, &to, &to, 100, true).await.unwrap().is_empty(), "an empty period");
}

/// A child that would take its tree over the operator's cap is refused in
/// its own transaction; a run's descendants come back whole, in its scope only.
pub async fn trees_are_capped_and_listed_whole(s: Arc<dyn Store>) {
    let t = tenant("a");
    let (_, root_id) = new_run(s.as_ref(), &t, None).await;
    let root = s.get_run(&t, &root_id).await.unwrap().unwrap();
    let caps = crate::TreeCaps { max_tree_runs: 3, max_org_open_runs: 100 };
    let child_of = |parent: &agentd_core::Run, n: usize| {
        let nr = NewRun {
            child: Some(crate::ChildOf::of(parent, 8, format!("c{n}"), caps)),
            ..NewRun::new(agentd_core::new_id("ses"), "child", "m/x", 2)
        };
        let spawned = EventKind::ChildSpawned {
            call_id: format!("call{n}"),
            child_run_id: nr.id.clone(),
            agent: "default".into(),
            task: "t".into(),
            held: false,
            reserved_tokens: None,
            reserved_usd: None,
        };
        (nr, spawned)
    };
    let (nr, ev) = child_of(&root, 1);
    let (child, _) = s.create_child_run(&t, &root_id, &crate::AppendGuard::default(), &nr, &ev).await.unwrap();
    let (nr, ev) = child_of(&child, 2);
    let (grandchild, _) = s.create_child_run(&t, &child.id, &crate::AppendGuard::default(), &nr, &ev).await.unwrap();
    let (nr, ev) = child_of(&root, 3);
    let r = s.create_child_run(&t, &root_id, &crate::AppendGuard::default(), &nr, &ev).await;
    assert!(matches!(r, Err(StoreError::TreeFull(_))), "a fourth run in a tree of 3: {r:?}");
    assert!(s.get_run(&t, &nr.id).await.unwrap().is_none(), "nothing of the refused child was written");
    let below = s.descendants(&t, &root_id).await.unwrap();
    assert_eq!(below.len(), 2, "{below:?}");
    assert!(below.iter().all(|(_, st)| *st == RunStatus::Queued));
    assert!(s.descendants(&tenant("b"), &root_id).await.unwrap().is_empty(), "another tenant sees none");

    // The grandchild used tokens and waits for a person; then the root is cancelled.
    let g = grandchild.id.clone();
    s.append(&t, &g, &[EventKind::RunStarted { node: "n".into() }, assistant("thinking")]).await.unwrap();
    s.append(&t, &g, &[ask("apr_tree", "call_t", "k", None)]).await.unwrap();
    s.append(&t, &root_id, &[EventKind::RunCancelled { reason: None }]).await.unwrap();
    for id in [&child.id, &g] {
        let run = s.get_run(&t, id).await.unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Cancelled, "{id}");
        let evs = s.events(&t, id, &EventQuery { after: 0, limit: 100, types: None }).await.unwrap();
        let cancels = evs.iter().filter(|e| e.type_name == "run.cancelled").count();
        assert_eq!((cancels, evs.last().map(|e| e.type_name.as_str())), (1, Some("run.cancelled")), "{id}");
        let seqs: Vec<i64> = evs.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=evs.len() as i64).collect::<Vec<_>>(), "gap-free: {id}");
        assert_eq!(run.last_seq, evs.len() as i64);
    }
    let a = s.get_approval(&t, "apr_tree").await.unwrap().unwrap();
    assert_eq!(a.status.as_str(), "cancelled", "a pending approval below closes with its run");
    let root = s.get_run(&t, &root_id).await.unwrap().unwrap();
    assert_eq!(root.tree_usage.total_tokens, 5, "the grandchild's usage reached the root: {:?}", root.tree_usage);
    assert!(matches!(s.append(&t, &g, &[assistant("late")]).await, Err(StoreError::RunFinished)));
}
