//! Skills: configured directories and uploads, progressive disclosure
//! through `load_skill`, broken skills reported without stopping the others.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

use crate::common::{Opts, Server, types};
use agentd_testkit::{MockOpenAi, Turn};
use serde_json::{Value, json};

fn write(path: &std::path::Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn skills_config(dir: &std::path::Path) -> std::path::PathBuf {
    let skills = dir.join("skills");
    write(
        &skills.join("pdf/SKILL.md"),
        "---\nname: pdf\ndescription: Work with PDF files\n---\n# PDF skill\nSECRET-BODY-MARKER: always check the page count.\n",
    );
    write(&skills.join("pdf/ref/guide.md"), "GUIDE-CONTENT for pdf");
    write(&skills.join("broken/SKILL.md"), "no front matter here");
    write(&skills.join("badname/SKILL.md"), "---\nname: Bad Name\ndescription: x\n---\n");
    let cfg = dir.join("agentd.toml");
    std::fs::write(&cfg, "skills_dirs = [\"skills\"]\n").unwrap();
    cfg
}

fn system_prompt(req: &Value) -> String {
    req["messages"][0]["content"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn skills_load_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = skills_config(dir.path());
    let mock = MockOpenAi::start(
        vec![
            Turn::tool("load_skill", json!({"name": "pdf"})),
            Turn::tool("read_file", json!({"path": ".skills/pdf/ref/guide.md"})),
            Turn::text("done"),
        ],
        0,
    )
    .await
    .unwrap();
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), config: Some(&cfg), ..Default::default() });
    let (_, list) = s.get("/v1/skills").await;
    let names: Vec<&str> = list["data"].as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["pdf"], "{list}");
    let errors = list["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{list}");
    assert!(errors.iter().any(|e| e["reason"].as_str().unwrap().contains("missing front matter")));
    assert!(errors.iter().any(|e| e["reason"].as_str().unwrap().contains("bad name")));
    let (_, tools) = s.get("/v1/tools").await;
    let load = tools["data"].as_array().unwrap().iter().find(|t| t["name"] == "load_skill").expect("load_skill listed");
    assert_eq!(load["source"], "skill");

    let (_, run) = s.post("/v1/runs", json!({"input": "summarise the pdf"})).await;
    let id = run["id"].as_str().unwrap();
    assert_eq!(s.wait_run(id).await["status"], "completed");
    let reqs = mock.requests();
    // First request: the summary only.
    let first = system_prompt(&reqs[0]);
    assert!(first.contains("pdf: Work with PDF files"), "{first}");
    assert!(!reqs[0].to_string().contains("SECRET-BODY-MARKER"), "the body is not sent before load_skill");
    // After load_skill, the body; after read_file, the file beside SKILL.md.
    let second = reqs[1]["messages"].as_array().unwrap().last().unwrap().clone();
    assert!(second["content"].as_str().unwrap().contains("SECRET-BODY-MARKER"), "{second}");
    let third = reqs[2]["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(third["content"], "GUIDE-CONTENT for pdf");
    let evs = s.events(id).await;
    let loaded = evs.iter().find(|e| e["type"] == "skill.loaded").expect("skill.loaded journaled");
    assert_eq!(loaded["data"]["name"], "pdf");
    assert!(types(&evs).iter().position(|t| t == "skill.loaded") > types(&evs).iter().position(|t| t == "tool.result"));
}

#[tokio::test(flavor = "multi_thread")]
async fn uploaded_skills_belong_to_their_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = skills_config(dir.path());
    let s = Server::start_with(Opts { config: Some(&cfg), ..Default::default() });
    let content = "---\nname: reviews\ndescription: How we review code\n---\nLook for tests first.\n";
    let body = json!({"content": content, "files": {"checklist.md": "- tests"}});
    let (c, v) = s.call(reqwest::Method::POST, "/v1/skills", Some(body.clone()), Some("acme")).await;
    assert_eq!(c, 201, "{v}");
    assert_eq!(s.call(reqwest::Method::POST, "/v1/skills", Some(body), Some("acme")).await.0, 409);
    let clash = json!({"content": "---\nname: pdf\ndescription: mine\n---\nx"});
    assert_eq!(
        s.call(reqwest::Method::POST, "/v1/skills", Some(clash), Some("acme")).await.0,
        409,
        "config names are taken"
    );
    let (c, v) = s.call(reqwest::Method::POST, "/v1/skills", Some(json!({"content": "nothing"})), Some("acme")).await;
    assert_eq!((c, v["error"]["code"].as_str()), (400, Some("invalid_skill")));
    assert!(v["error"]["message"].as_str().unwrap().contains("front matter"));
    let evil = json!({"content": "---\nname: evil\ndescription: d\n---\n", "files": {"../../x": "y"}});
    assert_eq!(s.call(reqwest::Method::POST, "/v1/skills", Some(evil), Some("acme")).await.0, 400);

    let (_, mine) = s.call(reqwest::Method::GET, "/v1/skills", None, Some("acme")).await;
    let names: Vec<&str> = mine["data"].as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["pdf", "reviews"]);
    let (_, theirs) = s.call(reqwest::Method::GET, "/v1/skills", None, Some("globex")).await;
    assert_eq!(theirs["data"].as_array().unwrap().len(), 1, "only the shared one: {theirs}");
    let (c, one) = s.call(reqwest::Method::GET, "/v1/skills/reviews", None, Some("acme")).await;
    assert_eq!((c, one["body"].as_str()), (200, Some("Look for tests first.\n")));
    assert_eq!(s.call(reqwest::Method::GET, "/v1/skills/reviews", None, Some("globex")).await.0, 404);
    // load_skill works as a direct call too, and puts the files in the workspace.
    let (c, v) = s
        .call(
            reqwest::Method::POST,
            "/v1/tools/load_skill/call",
            Some(json!({"arguments": {"name": "reviews"}})),
            Some("acme"),
        )
        .await;
    assert_eq!(c, 200, "{v}");
    assert!(v["content"][0]["text"].as_str().unwrap().contains(".skills/reviews/checklist.md"));
    let (_, f) = s
        .call(
            reqwest::Method::POST,
            "/v1/tools/read_file/call",
            Some(json!({"arguments": {"path": ".skills/reviews/checklist.md"}})),
            Some("acme"),
        )
        .await;
    assert_eq!(f["content"][0]["text"], "- tests");
    let updated = json!({"content": "---\nname: reviews\ndescription: How we review now\n---\nTests, then names.\n"});
    let (c, v) = s.call(reqwest::Method::PUT, "/v1/skills/reviews", Some(updated.clone()), Some("acme")).await;
    assert_eq!(c, 200, "{v}");
    let (_, one) = s.call(reqwest::Method::GET, "/v1/skills/reviews", None, Some("acme")).await;
    assert_eq!(one["body"], "Tests, then names.\n");
    assert_eq!(s.call(reqwest::Method::PUT, "/v1/skills/other", Some(updated), Some("acme")).await.0, 400);
    assert_eq!(s.call(reqwest::Method::DELETE, "/v1/skills/reviews", None, Some("acme")).await.0, 204);
    assert_eq!(s.call(reqwest::Method::DELETE, "/v1/skills/reviews", None, Some("acme")).await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn naming_a_skill_loads_it_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = skills_config(dir.path());
    let mock = MockOpenAi::start(vec![Turn::text("done")], 0).await.unwrap();
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), config: Some(&cfg), ..Default::default() });
    let (_, run) = s.post("/v1/runs", json!({"input": "use /pdf on report.pdf"})).await;
    let id = run["id"].as_str().unwrap();
    assert_eq!(s.wait_run(id).await["status"], "completed");
    assert!(mock.requests()[0].to_string().contains("SECRET-BODY-MARKER"), "the body goes with the first request");
    let evs = s.events(id).await;
    let loaded = evs.iter().find(|e| e["type"] == "skill.loaded").expect("skill.loaded");
    assert_eq!((loaded["data"]["name"].as_str(), loaded["data"]["call_id"].as_str()), (Some("pdf"), Some("mentioned")));
}
