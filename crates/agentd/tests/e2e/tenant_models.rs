//! Providers and model profiles a tenant brings: the key a sealed secret
//! sent only to the tenant's endpoint, names resolved tenant-first, nothing
//! visible to or usable by another tenant, and destinations behind the
//! egress guard.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

use reqwest::Method;
use serde_json::{Value, json};

use crate::auth::{call, code_of, make_key};
use crate::common::{Opts, Server};
use agentd_testkit::{MockOpenAi, Turn};

const KEY: &str = "sk-tenant-4d1f0b7e93";

async fn run_to_end(s: &Server, key: &str, body: Value) -> Value {
    let (c, run) = call(s, Some(key), Method::POST, "/v1/runs", Some(body)).await;
    assert_eq!(c, 202, "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    for _ in 0..1000 {
        let (_, r) = call(s, Some(key), Method::GET, &format!("/v1/runs/{id}"), None).await;
        if ["completed", "failed", "cancelled"].contains(&r["status"].as_str().unwrap_or("")) {
            return r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("run {id} did not finish");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_brings_its_own_provider_and_profiles() {
    let server_mock = MockOpenAi::start(vec![Turn::text("from the server's model")], 0).await.unwrap();
    let own = MockOpenAi::start(vec![Turn::text("from acme's model"), Turn::text("again acme's")], 0).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = tmp.path().join("agentd.toml");
    // The mocks listen on loopback: the operator allows it (the guard refuses it otherwise).
    std::fs::write(&cfg, "[egress]\nallow = [\"127.0.0.1\"]\n").unwrap();
    let admin = make_key(&data, &["--role", "admin", "--org", "acme"]);
    let member = make_key(&data, &["--role", "member", "--org", "acme"]);
    let other = make_key(&data, &["--role", "admin", "--org", "globex"]);
    let s = Server::start_with(Opts {
        mock: Some(&server_mock.base_url),
        data_dir: Some(&data),
        config: Some(&cfg),
        ..Default::default()
    });
    let (c, v) = call(&s, Some(&admin), Method::PUT, "/v1/secrets/llm", Some(json!({"value": KEY}))).await;
    assert_eq!(c, 200, "{v}");

    let provider = json!({"name": "mine", "type": "openai", "base_url": own.base_url,
                          "api_key": {"secret": "llm"}, "headers": {"x-team": "red"}});
    let (c, v) = call(&s, Some(&member), Method::POST, "/v1/providers", Some(provider.clone())).await;
    assert_eq!((c, code_of(&v)), (403, "forbidden"), "providers hold credentials: admins add them");
    let (c, v) = call(&s, Some(&admin), Method::POST, "/v1/providers", Some(provider.clone())).await;
    assert_eq!(c, 201, "{v}");
    assert_eq!((v["source"].as_str(), v["api_key"].clone()), (Some("tenant"), json!({"secret": "llm"})));
    let (c, v) = call(&s, Some(&admin), Method::POST, "/v1/providers", Some(provider.clone())).await;
    assert_eq!((c, code_of(&v)), (409, "provider_exists"));

    // Refused at once: a secret the tenant lacks, a plain key, a type tenants may not use, an internal address.
    for (body, why) in [
        (json!({"name": "a", "type": "openai", "base_url": own.base_url, "api_key": {"secret": "nope"}}), "no secret"),
        (json!({"name": "b", "type": "openai", "base_url": own.base_url, "api_key": KEY}), "plain key"),
        (json!({"name": "c", "type": "scripted"}), "scripted"),
        (json!({"name": "d", "type": "openai", "base_url": "http://169.254.169.254/v1"}), "metadata address"),
        (json!({"name": "e/f", "type": "openai"}), "slash in the name"),
        (json!({"name": "g", "type": "ollama"}), "ollama without base_url"),
    ] {
        let (c, v) = call(&s, Some(&admin), Method::POST, "/v1/providers", Some(body)).await;
        assert_eq!(c, 400, "{why}: {v}");
        assert!(!v.to_string().contains(KEY), "{why}: {v}");
    }

    let profile = json!({"name": "smart", "provider": "mine", "model": "acme-large", "max_tokens": 99,
                         "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}});
    let (c, v) = call(&s, Some(&admin), Method::POST, "/v1/model-profiles", Some(profile)).await;
    assert_eq!(c, 201, "{v}");
    assert_eq!((v["model"].as_str(), v["source"].as_str()), (Some("acme-large"), Some("tenant")));
    let bad = json!({"name": "broken", "provider": "nope", "model": "x"});
    let (c, v) = call(&s, Some(&admin), Method::POST, "/v1/model-profiles", Some(bad)).await;
    assert_eq!((c, code_of(&v)), (400, "unknown_provider"), "{v}");

    let (_, listed) = call(&s, Some(&member), Method::GET, "/v1/providers", None).await;
    let names: Vec<(String, String)> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().into(), p["source"].as_str().unwrap().into()))
        .collect();
    assert!(names.contains(&("mine".into(), "tenant".into())) && names.contains(&("openai".into(), "server".into())));
    assert!(!listed.to_string().contains(KEY));
    let (c, h) = call(&s, Some(&member), Method::GET, "/v1/providers/mine/health", None).await;
    assert_eq!((c, h["ok"].as_bool()), (200, Some(true)), "{h}");

    // The tenant's profile runs on the tenant's endpoint with the tenant's key.
    let r = run_to_end(&s, &member, json!({"input": "hi", "model": "smart"})).await;
    assert_eq!((r["status"].as_str(), r["output"].as_str()), (Some("completed"), Some("from acme's model")), "{r}");
    assert!(r["cost_usd"].as_f64().unwrap_or(0.0) > 0.0, "the tenant profile's price counts: {r}");
    let r = run_to_end(&s, &member, json!({"input": "hi", "model": "mine/acme-mini"})).await;
    assert_eq!(r["output"], "again acme's", "{r}");
    let reqs = own.requests();
    assert_eq!(reqs.iter().map(|b| b["model"].as_str().unwrap()).collect::<Vec<_>>(), ["acme-large", "acme-mini"]);
    assert_eq!(reqs[0]["max_tokens"], 99);
    assert_eq!(own.authorizations(), vec![Some(format!("Bearer {KEY}")); 2]);
    assert_eq!(server_mock.calls(), 0, "the server's provider was not used");
    let id = r["id"].as_str().unwrap();
    let (_, events) = call(&s, Some(&member), Method::GET, &format!("/v1/runs/{id}/events"), None).await;
    assert!(!events.to_string().contains(KEY), "the key is in no event");

    // Another tenant sees none of it and cannot use it.
    let (_, theirs) = call(&s, Some(&other), Method::GET, "/v1/providers", None).await;
    assert!(!theirs.to_string().contains("\"mine\""), "{theirs}");
    let (_, theirs) = call(&s, Some(&other), Method::GET, "/v1/model-profiles", None).await;
    assert!(!theirs.to_string().contains("smart"), "{theirs}");
    for (model, code) in [("smart", "unknown_model"), ("mine/acme-large", "unknown_provider")] {
        let (c, v) =
            call(&s, Some(&other), Method::POST, "/v1/runs", Some(json!({"input": "x", "model": model}))).await;
        assert_eq!((c, code_of(&v)), (400, code), "{model}: {v}");
    }
    assert_eq!(call(&s, Some(&other), Method::GET, "/v1/providers/mine/health", None).await.0, 404);
    assert_eq!(call(&s, Some(&other), Method::DELETE, "/v1/providers/mine", None).await.0, 404);
    assert_eq!(call(&s, Some(&other), Method::DELETE, "/v1/model-profiles/smart", None).await.0, 404);
    assert_eq!(own.calls(), 2);

    // Audited with the acting key; deleting the provider leaves the profile unresolvable.
    let (_, log) = call(&s, Some(&admin), Method::GET, "/v1/audit", None).await;
    let routes: Vec<&str> = log["data"].as_array().unwrap().iter().filter_map(|e| e["route"].as_str()).collect();
    assert!(routes.contains(&"/v1/providers") && routes.contains(&"/v1/model-profiles"), "{log}");
    assert_eq!(call(&s, Some(&admin), Method::DELETE, "/v1/providers/mine", None).await.0, 204);
    let (c, v) = call(&s, Some(&member), Method::POST, "/v1/runs", Some(json!({"input": "x", "model": "smart"}))).await;
    assert_eq!((c, code_of(&v)), (400, "unknown_provider"), "{v}");
    assert_eq!(call(&s, Some(&admin), Method::DELETE, "/v1/model-profiles/smart", None).await.0, 204);
    assert_eq!(call(&s, Some(&admin), Method::DELETE, "/v1/model-profiles/smart", None).await.0, 404);

    // The server's own profile still answers for the tenant.
    let r = run_to_end(&s, &member, json!({"input": "hi"})).await;
    assert_eq!(r["output"], "from the server's model", "{r}");
}
