//! `agentd bench --scenario fanout`: a parent spawning 100 children that
//! each do one tool round (time from the first spawn to the parent's
//! wake-up, and overhead per child over a plain run), then 1,000 parents
//! each waiting on 10 children (tasks and memory held by waiting parents).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentd_core::AgentLimits;
use agentd_core::{RunStatus, StoredEvent, Tenant};
use agentd_runtime::{CreateRun, Runtime};
use agentd_store::{EventQuery, Page, RunFilter};
use agentd_testkit::{MockOpenAi, Turn};
use serde_json::json;

use super::{BenchOpts, ms, rig_with, rss_kib};

/// The mock's delegation scenarios (see `agentd mock-llm --fanout`).
pub(super) fn rules(mock: &MockOpenAi, n: usize) {
    let spawns = |task: &str| {
        Turn::ToolCalls((0..n).map(|i| ("spawn".to_string(), json!({"task": format!("{task} {i}")}))).collect())
    };
    let collect = Turn::tool("wait_children", json!({}));
    mock.rule("FANOUT-PARENT", vec![spawns("FANOUT-CHILD"), collect.clone(), Turn::text("collected")]);
    mock.rule("FANOUT-CHILD", vec![Turn::tool("echo", json!({"x": 1})), Turn::text("child done")]);
    mock.rule("HOLD-PARENT", vec![spawns("HOLD-CHILD"), collect.clone(), Turn::text("collected")]);
    // A tree of n + n² runs below its root, every leaf waiting for a person.
    mock.rule("TREE-ROOT", vec![spawns("TREE-MID"), collect.clone(), Turn::text("collected")]);
    mock.rule("TREE-MID", vec![spawns("HOLD-CHILD"), collect, Turn::text("collected")]);
    // A child asks a person before its first call: it waits with no task, like its parent.
    mock.rule("HOLD-CHILD", vec![Turn::tool("echo", json!({"hold": true})), Turn::text("late")]);
}

fn at(ev: &StoredEvent) -> i64 {
    chrono::DateTime::parse_from_rfc3339(&ev.created_at).map(|d| d.timestamp_millis()).unwrap_or(0)
}

async fn create(rt: &Arc<Runtime>, input: String) -> anyhow::Result<String> {
    let req = CreateRun { input, model: Some("mock/mock-model".into()), max_steps: Some(8), ..Default::default() };
    Ok(rt.create_run(&Tenant::default(), req, false).await.map_err(|e| anyhow::anyhow!(e))?.run.id)
}

async fn wait_done(rt: &Arc<Runtime>, ids: &[String]) -> anyhow::Result<()> {
    let t = Tenant::default();
    for id in ids {
        loop {
            let run = rt.get_run(&t, id).await.map_err(|e| anyhow::anyhow!(e))?;
            if run.status.is_terminal() {
                anyhow::ensure!(run.status == RunStatus::Completed, "run {id} ended {:?}: {:?}", run.status, run.error);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(())
}

/// Runs in this status (paged: a page holds at most 10,000).
async fn count(store: &Arc<dyn agentd_store::Store>, status: RunStatus) -> anyhow::Result<usize> {
    let (mut n, mut after) = (0, None);
    loop {
        let f = RunFilter { status: Some(status), ..Default::default() };
        let page = store.list_runs(&Tenant::default(), &f, &Page { after, limit: 10_000 }).await?;
        n += page.len();
        match page.last() {
            Some(last) if page.len() == 10_000 => after = Some(last.id.clone()),
            _ => return Ok(n),
        }
    }
}

pub(super) async fn fanout(o: BenchOpts) -> anyhow::Result<ExitCode> {
    const CHILDREN: usize = 100;
    let limits = AgentLimits {
        max_children: CHILDREN as u32,
        max_concurrent_children: CHILDREN as u32,
        ..AgentLimits::default()
    };
    let o = BenchOpts { rounds: 1, ..o };
    let r = rig_with(&o, 256, "bench", CHILDREN, |a| a.limits = limits).await?;
    r.rt.start().await?;
    let t = Tenant::default();
    println!("agentd bench fanout; {}; mock think time {} ms", r.label, o.mock_latency_ms);

    // Baseline: as many plain runs (one echo round each), all at once.
    let t0 = Instant::now();
    let mut plain = vec![];
    for i in 0..CHILDREN {
        plain.push(create(&r.rt, format!("PLAIN {i}")).await?);
    }
    wait_done(&r.rt, &plain).await?;
    let plain_wall = t0.elapsed();

    let t0 = Instant::now();
    let parent = create(&r.rt, "FANOUT-PARENT".into()).await?;
    wait_done(&r.rt, std::slice::from_ref(&parent)).await?;
    let tree_wall = t0.elapsed();
    let q = EventQuery { after: 0, limit: 10_000, types: None };
    let evs = r.store.events(&t, &parent, &q).await?;
    let first = |ty: &str| evs.iter().find(|e| e.type_name == ty).map(at).unwrap_or(0);
    let (spawned, done) = (first("child.spawned"), first("children.done"));
    let last_spawn = evs.iter().filter(|e| e.type_name == "child.spawned").map(at).max().unwrap_or(0);
    let resumed = evs.iter().filter(|e| e.type_name == "run.resumed").map(at).max().unwrap_or(0);
    let kids = r.store.list_children(&t, &parent).await?;
    anyhow::ensure!(kids.len() == CHILDREN, "{} children", kids.len());
    let last_child_end = kids
        .iter()
        .map(|k| chrono::DateTime::parse_from_rfc3339(&k.updated_at).map(|d| d.timestamp_millis()).unwrap_or(0))
        .max()
        .unwrap_or(0);
    println!("{CHILDREN} plain runs (one tool round each) at once: {:.0} ms", ms(plain_wall));
    if done == 0 {
        // The children all ended before the parent asked to wait: it never waited.
        println!(
            "a parent spawning {CHILDREN} children: {:.0} ms in all; spawning took {} ms; the children had all ended \
             before the parent waited (no children.done)",
            ms(tree_wall),
            last_spawn - spawned
        );
    } else {
        println!(
            "a parent spawning {CHILDREN} children: {:.0} ms in all; spawning took {} ms; first spawn -> parent woken \
             (children.done) {} ms; last child ended -> children.done {} ms; children.done -> parent running again {} ms",
            ms(tree_wall),
            last_spawn - spawned,
            done - spawned,
            done - last_child_end,
            resumed - done
        );
    }
    println!("overhead per child over a plain run: {:.2} ms", (ms(tree_wall) - ms(plain_wall)) / CHILDREN as f64);
    r.rt.shutdown(Duration::from_millis(10)).await;
    drop(r);

    // Parents waiting on children, children waiting on a person: no task, no lease, rows.
    let parents = o.runs.clamp(10, 5_000);
    let policy: agentd_safety::PolicyConfig = serde_json::from_value(json!({"ask": ["echo"]}))?;
    let r = rig_with(&o, 64, "bench", 10, |a| {
        a.limits = AgentLimits { max_concurrent_children: 10, ..AgentLimits::default() };
        a.policy = agentd_runtime::policy_from(&policy);
    })
    .await?;
    r.rt.start().await?;
    let mut rss = vec![rss_kib().0];
    // Two rounds: the first brings the allocator and caches to their working
    // size, the second shows what each more waiting tree holds.
    for round in 1..=2 {
        let t0 = Instant::now();
        for i in 0..parents {
            create(&r.rt, format!("HOLD-PARENT {round}-{i}")).await?;
        }
        loop {
            let p = count(&r.store, RunStatus::WaitingChildren).await?;
            let c = count(&r.store, RunStatus::WaitingApproval).await?;
            if p >= parents * round && c >= parents * round * 10 && r.rt.active_runs() == 0 {
                break;
            }
            anyhow::ensure!(t0.elapsed() < Duration::from_secs(900), "only {p} parents and {c} children waiting");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        rss.push(rss_kib().0);
        println!(
            "round {round}: {} parents waiting on {} children (all waiting for a person) after {:.0} ms; tasks on this \
             node: {}; RSS {:.1} MiB",
            parents * round,
            parents * round * 10,
            ms(t0.elapsed()),
            r.rt.active_runs(),
            rss[round] as f64 / 1024.0
        );
    }
    let more = rss[2].saturating_sub(rss[1]) as f64;
    println!(
        "memory per waiting tree (a parent and its 10 children) in round 2: {:.2} KiB, {:.2} KiB per waiting run",
        more / parents as f64,
        more / (parents * 11) as f64
    );
    r.rt.shutdown(Duration::from_millis(10)).await;
    drop(r);
    cancel_tree(&o).await?;
    Ok(ExitCode::SUCCESS)
}

/// A tree of about 5,000 runs (70 children of the root, 70 under each, every
/// leaf waiting for a person), then the time the API's cancel of its root takes.
async fn cancel_tree(o: &BenchOpts) -> anyhow::Result<()> {
    const N: usize = 70;
    let policy: agentd_safety::PolicyConfig = serde_json::from_value(json!({"ask": ["echo"]}))?;
    let r = rig_with(o, 64, "bench", N, |a| {
        a.limits = AgentLimits {
            max_depth: 4,
            max_children: N as u32,
            max_concurrent_children: N as u32,
            ..AgentLimits::default()
        };
        a.policy = agentd_runtime::policy_from(&policy);
    })
    .await?;
    r.rt.start().await?;
    let t = Tenant::default();
    let t0 = Instant::now();
    let root = create(&r.rt, "TREE-ROOT".into()).await?;
    loop {
        let below = r.store.descendants(&t, &root).await?;
        let leaves = below.iter().filter(|(_, s)| *s == RunStatus::WaitingApproval).count();
        if leaves >= N * N && r.rt.active_runs() == 0 {
            break;
        }
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(1800), "only {leaves} leaves waiting");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let open =
        || async { anyhow::Ok(r.store.descendants(&t, &root).await?.iter().filter(|(_, s)| !s.is_terminal()).count()) };
    let total = open().await? + 1;
    println!("a tree of {total} unfinished runs built in {:.0} ms", ms(t0.elapsed()));
    let t1 = Instant::now();
    r.rt.cancel(&t, &root, Some("bench".into())).await.map_err(|e| anyhow::anyhow!(e))?;
    let api = t1.elapsed();
    let left = open().await?;
    println!("cancelling its root: {:.0} ms of API time; {left} runs of the tree still open after it", ms(api));
    r.rt.shutdown(Duration::from_millis(10)).await;
    Ok(())
}
