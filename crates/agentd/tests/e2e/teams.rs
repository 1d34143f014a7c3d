//! Teams: serial and parallel team runs with their blackboards.

use crate::common::Server;
use agentd_testkit::{MockOpenAi, Turn};
use serde_json::{Value, json};

async fn team_run(s: &Server, team: &str, input: &str) -> (Value, Vec<Value>) {
    let (c, r) = s.post(&format!("/v1/teams/{team}/runs"), json!({"input": input})).await;
    assert_eq!(c, 202, "{r}");
    let run = s.wait_run(r["id"].as_str().unwrap()).await;
    let (c, board) = s.get(&format!("/v1/teams/{team}/blackboard")).await;
    assert_eq!(c, 200, "{board}");
    (run, board["data"].as_array().cloned().unwrap())
}

fn kinds(board: &[Value]) -> Vec<String> {
    board.iter().map(|e| format!("{}:{}", e["kind"].as_str().unwrap(), e["author"].as_str().unwrap())).collect()
}

fn mock_team(mock: &MockOpenAi) {
    mock.rule(
        "researcher of the team",
        vec![
            Turn::tool("blackboard_write", json!({"kind": "evidence", "content": "found X"})),
            Turn::text("proposal A"),
        ],
    );
    mock.rule("critic of the team", vec![Turn::text("proposal B")]);
    mock.rule("lead of the team", vec![Turn::text("decision: go with A")]);
}

#[tokio::test]
async fn a_serial_team_runs_members_in_order_then_the_lead_decides() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    mock_team(&mock);
    let s = Server::start(&mock.base_url);
    let team = json!({"name": "crew", "strategy": "serial",
        "members": [{"agent": "default", "role": "researcher"}, {"agent": "default", "role": "critic"}],
        "lead": {"agent": "default", "role": "lead"}});
    let (c, v) = s.post("/v1/teams", team.clone()).await;
    assert_eq!(c, 201, "{v}");
    let (c, _) = s.post("/v1/teams", team).await;
    assert_eq!(c, 409);
    let (run, board) = team_run(&s, "crew", "pick a plan").await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["output"], "decision: go with A");
    assert_eq!(
        kinds(&board),
        ["task:user", "evidence:researcher", "proposal:researcher", "proposal:critic", "decision:lead"]
    );
    assert_eq!(board.last().unwrap()["content"], "decision: go with A");
    let id = run["id"].as_str().unwrap();
    let (_, kids) = s.get(&format!("/v1/runs/{id}/children")).await;
    let kids = kids["data"].as_array().unwrap();
    assert_eq!(kids.len(), 3);
    // Serial: the critic starts after the researcher ended, and reads its proposal.
    assert!(kids[1]["created_at"].as_str() >= kids[0]["updated_at"].as_str());
    assert!(kids[1]["input"].as_str().unwrap().contains("proposal A"));
    assert!(kids[2]["input"].as_str().unwrap().contains("proposal B"), "the lead reads everyone");
    // Entries carry the run that wrote them.
    assert_eq!(board[1]["run_id"], kids[0]["id"]);
}

#[tokio::test]
async fn a_parallel_team_fans_members_out_and_the_lead_synthesises() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    mock_team(&mock);
    let s = Server::start(&mock.base_url);
    let team = json!({"name": "swarm", "strategy": "parallel",
        "members": [{"agent": "default", "role": "researcher"}, {"agent": "default", "role": "critic"}],
        "lead": {"agent": "default", "role": "lead"}});
    let (c, v) = s.post("/v1/teams", team).await;
    assert_eq!(c, 201, "{v}");
    let (run, board) = team_run(&s, "swarm", "pick a plan").await;
    assert_eq!(run["status"], "completed", "{run}");
    let k = kinds(&board);
    assert_eq!(k.first().map(String::as_str), Some("task:user"));
    assert_eq!(k.last().map(String::as_str), Some("decision:lead"));
    assert!(k.contains(&"proposal:researcher".into()) && k.contains(&"proposal:critic".into()), "{k:?}");
    let id = run["id"].as_str().unwrap();
    let (_, kids) = s.get(&format!("/v1/runs/{id}/children")).await;
    let kids = kids["data"].as_array().unwrap();
    // Parallel: neither member saw the other's proposal; the lead saw both.
    assert!(!kids[1]["input"].as_str().unwrap().contains("proposal A"));
    assert!(!kids[0]["input"].as_str().unwrap().contains("proposal B"));
    let lead = kids.iter().find(|k| k["input"].as_str().unwrap().contains("lead of the team")).unwrap();
    assert!(
        lead["input"].as_str().unwrap().contains("proposal A")
            && lead["input"].as_str().unwrap().contains("proposal B")
    );
    let evs = s.events(id).await;
    let waits = evs.iter().filter(|e| e["type"] == "children.waiting").collect::<Vec<_>>();
    assert_eq!(waits.len(), 2, "members together, then the lead");
    assert_eq!(waits[0]["data"]["child_run_ids"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn teams_and_blackboards_check_their_input_and_are_per_tenant() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let s = Server::start(&mock.base_url);
    let lead = json!({"agent": "default", "role": "lead"});
    let (c, v) = s.post("/v1/teams", json!({"name": "t", "lead": {"agent": "ghost", "role": "lead"}})).await;
    assert_eq!((c, v["error"]["code"].as_str()), (404, Some("agent_not_found")), "{v}");
    let (c, _) = s.post("/v1/teams", json!({"name": "t", "strategy": "random", "lead": lead})).await;
    assert_eq!(c, 400);
    let (c, _) = s.post("/v1/teams", json!({"name": "t", "lead": lead})).await;
    assert_eq!(c, 201);
    let (c, v) = s.post("/v1/teams/t/blackboard", json!({"kind": "note", "content": "remember the milk"})).await;
    assert_eq!(c, 201, "{v}");
    assert_eq!(v["author"], "user");
    let (c, _) = s.post("/v1/teams/t/blackboard", json!({"kind": "gossip", "content": "x"})).await;
    assert_eq!(c, 400);
    let (c, v) = s.post("/v1/teams/nope/runs", json!({"input": "x"})).await;
    assert_eq!((c, v["error"]["code"].as_str()), (404, Some("team_not_found")));
    // Another organisation sees none of it.
    let (c, _) = s.call(reqwest::Method::GET, "/v1/teams/t/blackboard", None, Some("globex")).await;
    assert_eq!(c, 404);
    let (c, v) = s.call(reqwest::Method::GET, "/v1/teams", None, Some("globex")).await;
    assert_eq!((c, v["data"].as_array().map(Vec::len)), (200, Some(0)));
}
