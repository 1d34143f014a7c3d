//! Agents as versioned resources: versions, a run pinned to the version it
//! started with, export → import, and files under `agents_dirs`.

use crate::common::{Opts, Server};
use agentd_testkit::{MockOpenAi, Turn};
use serde_json::{Value, json};

fn system_of(req: &Value) -> String {
    req["messages"][0]["content"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn an_edit_makes_a_version_and_never_changes_a_run_in_flight() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    mock.rule("VERSIONED", vec![Turn::tool("echo", json!({"x": 1})), Turn::text("finished")]);
    let s = Server::start(&mock.base_url);
    let agent = json!({"name": "writer", "system_prompt": "PROMPT-V1", "policy": {"ask": ["echo"]}});
    let (c, v) = s.post("/v1/agents", agent).await;
    assert_eq!(c, 201, "{v}");
    let (c, v) = s.post("/v1/agents", json!({"name": "writer"})).await;
    assert_eq!(c, 409, "POST of an existing name stays 409: {v}");
    let (_, r) = s.post("/v1/runs", json!({"input": "VERSIONED go", "agent": "writer"})).await;
    let id = r["id"].as_str().unwrap();
    assert_eq!(r["agent_version"], 1, "{r}");
    // The run pauses for a person; meanwhile the agent is edited.
    s.wait_event(id, "approval.requested").await;
    let edited = json!({"name": "writer", "system_prompt": "PROMPT-V2", "policy": {"ask": ["echo"]}});
    let (c, v) = s.call(reqwest::Method::PUT, "/v1/agents/writer", Some(edited), None).await;
    assert_eq!(c, 200, "{v}");
    let (_, list) = s.get(&format!("/v1/approvals?run_id={id}")).await;
    let aid = list["data"][0]["id"].as_str().unwrap();
    let (c, v) = s.post(&format!("/v1/approvals/{aid}"), json!({"decision": "approve"})).await;
    assert_eq!(c, 200, "{v}");
    let run = s.wait_run(id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["agent_version"], 1);
    let reqs: Vec<Value> = mock.requests().into_iter().filter(|b| b.to_string().contains("VERSIONED go")).collect();
    assert_eq!(reqs.len(), 2);
    assert!(reqs.iter().all(|r| system_of(r).starts_with("PROMPT-V1")), "both steps used version 1");

    let (c, versions) = s.get("/v1/agents/writer/versions").await;
    assert_eq!(c, 200, "{versions}");
    let vs = versions["data"].as_array().unwrap();
    assert_eq!(vs.len(), 2);
    assert_eq!((vs[0]["version"].as_i64(), vs[1]["version"].as_i64()), (Some(1), Some(2)));
    assert_eq!(vs[1]["doc"]["system_prompt"], "PROMPT-V2");
    // A new run takes the new version.
    mock.rule("SECOND", vec![Turn::text("ok")]);
    let (_, r) = s.post("/v1/runs", json!({"input": "SECOND", "agent": "writer"})).await;
    let run = s.wait_run(r["id"].as_str().unwrap()).await;
    assert_eq!(run["agent_version"], 2);
    let last = mock.requests().into_iter().rfind(|b| b.to_string().contains("SECOND")).unwrap();
    assert!(system_of(&last).starts_with("PROMPT-V2"));
    let (c, _) = s.get("/v1/agents/nobody/versions").await;
    assert_eq!(c, 404);
}

#[tokio::test]
async fn export_then_import_round_trips_an_agent_with_its_skill_and_template() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let a = Server::start(&mock.base_url);
    let (c, v) = a.post("/v1/prompt-templates", json!({"name": "persona", "content": "You are {{ who }}."})).await;
    assert_eq!(c, 201, "{v}");
    let skill = "---\nname: notes\ndescription: Takes notes\n---\nWrite notes.\n";
    let (c, v) = a.post("/v1/skills", json!({"content": skill})).await;
    assert_eq!(c, 201, "{v}");
    let def = json!({"name": "scribe", "system_template": "persona", "skills": ["notes"], "description": "writes",
                     "limits": {"max_depth": 1}});
    let (c, v) = a.post("/v1/agents", def).await;
    assert_eq!(c, 201, "{v}");
    let (c, bundle) = a.get("/v1/agents/scribe/export").await;
    assert_eq!(c, 200, "{bundle}");
    assert_eq!(bundle["format"], "agentd.agent/v1");
    assert_eq!(bundle["agent"]["limits"]["max_depth"], 1);
    assert_eq!(bundle["skills"][0]["name"], "notes");
    assert_eq!(bundle["templates"][0]["content"], "You are {{ who }}.");

    // Another server (another database) takes it back whole.
    let b = Server::start(&mock.base_url);
    let (c, v) = b.post("/v1/agents/import", bundle.clone()).await;
    assert_eq!(c, 201, "{v}");
    assert_eq!(v["version"], 1);
    let (_, agents) = b.get("/v1/agents").await;
    let got = agents["data"].as_array().unwrap().iter().find(|x| x["name"] == "scribe").cloned().unwrap();
    assert_eq!(got["system_template"], "persona");
    assert_eq!(got["description"], "writes");
    let (c, _) = b.get("/v1/skills/notes").await;
    assert_eq!(c, 200);
    let (c, tpl) = b.get("/v1/prompt-templates/persona").await;
    assert_eq!((c, tpl["content"].as_str()), (200, Some("You are {{ who }}.")));
    // A clash is refused whole, unless replace=true (a new version).
    let (c, v) = b.post("/v1/agents/import", bundle.clone()).await;
    assert_eq!((c, v["error"]["code"].as_str()), (409, Some("agent_exists")), "{v}");
    let (c, v) = b.post("/v1/agents/import?replace=true", bundle.clone()).await;
    assert_eq!(c, 201, "{v}");
    assert_eq!(v["version"], 2);
    let mut broken = bundle.clone();
    broken["format"] = json!("something/else");
    let (c, v) = b.post("/v1/agents/import", broken).await;
    assert_eq!(c, 400, "{v}");
}

#[tokio::test]
async fn agents_dirs_load_agent_md_files() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    mock.rule("FROM-FILE", vec![Turn::text("ok")]);
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents");
    std::fs::create_dir_all(agents.join("reviewer")).unwrap();
    std::fs::write(
        agents.join("reviewer/AGENT.md"),
        "---\ndescription: Reviews code\ntools: [echo, read_file]\nmax_steps: 4\n---\nYou review code for {{ team }}.\n",
    )
    .unwrap();
    std::fs::create_dir_all(agents.join("broken")).unwrap();
    std::fs::write(agents.join("broken/AGENT.md"), "no front matter").unwrap();
    let cfg = dir.path().join("agentd.toml");
    std::fs::write(&cfg, format!("agents_dirs = [{:?}]\n", agents.display().to_string())).unwrap();
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), config: Some(&cfg), ..Default::default() });
    let (_, list) = s.get("/v1/agents").await;
    let reviewer = list["data"].as_array().unwrap().iter().find(|a| a["name"] == "reviewer").cloned().unwrap();
    assert_eq!(reviewer["source"], "file");
    let (_, r) =
        s.post("/v1/runs", json!({"input": "FROM-FILE", "agent": "reviewer", "arguments": {"team": "infra"}})).await;
    let run = s.wait_run(r["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["max_steps"], 4);
    let req = mock.requests().into_iter().rfind(|b| b.to_string().contains("FROM-FILE")).unwrap();
    assert!(system_of(&req).starts_with("You review code for infra."), "{}", system_of(&req));
    let offered: Vec<&str> =
        req["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert_eq!(offered, ["echo", "read_file"]);
}
