//! A session's workspace over `/v1/sessions/{id}/files`: upload, list,
//! read (inert), download, search, rename, delete; `..` and symlinks out
//! refused; another tenant's session is 404; `<file>` references in a
//! message expand to the file's text when the run is created.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

use agentd_testkit::{MockOpenAi, Turn};
use reqwest::Method;
use serde_json::json;

use crate::common::Server;

#[tokio::test(flavor = "multi_thread")]
async fn session_files_are_managed_inside_the_workspace() {
    let mock = MockOpenAi::start(vec![Turn::text("read it")], 0).await.unwrap();
    let s = Server::start(&mock.base_url);
    let (_, session) = s.post("/v1/sessions", json!({})).await;
    let sid = session["id"].as_str().unwrap().to_string();
    let f = |p: &str| format!("/v1/sessions/{sid}/files{p}");
    let put = |p: String, body: &'static str| {
        let s = &s;
        async move { s.req(Method::PUT, &p).body(body).send().await.unwrap() }
    };
    let r = put(f("/notes/a.txt"), "hello world\nsecond line").await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["size"], 23);
    assert_eq!(put(f("/page.html"), "<script>alert(1)</script>").await.status(), 201);

    let (c, root) = s.get(&f("")).await;
    assert_eq!(c, 200, "{root}");
    let names: Vec<(&str, &str)> = root["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [("notes", "dir"), ("page.html", "file")], "directories first");
    let (_, dir) = s.get(&f("/notes")).await;
    assert_eq!(dir["entries"][0]["path"], "notes/a.txt");

    let r = s.req(Method::GET, &f("/notes/a.txt")).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(r.text().await.unwrap(), "hello world\nsecond line");
    let r = s.req(Method::GET, &f("/page.html")).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8", "markup is served inert");
    assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("sandbox"));
    let r = s.req(Method::GET, &format!("{}?download=1", f("/notes/a.txt"))).send().await.unwrap();
    assert_eq!(r.headers()["content-disposition"], "attachment; filename=\"a.txt\"");

    let (_, found) = s.get(&format!("{}?q=SECOND", f(""))).await;
    let hits = found["hits"].as_array().unwrap();
    assert!(hits.iter().any(|h| h["path"] == "notes/a.txt" && h["line"] == 2), "{found}");

    // Escapes: `..` (slashes encoded so the client keeps it) and a symlink out.
    let r = put(f("/..%2F..%2Fescaped.txt"), "x").await;
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_path")), "{body}");
    let ws = s.data_dir.join("workspaces/default/default/default").join(&sid);
    std::os::unix::fs::symlink("/etc", ws.join("out")).unwrap();
    let (c, v) = s.get(&f("/out/hostname")).await;
    assert_eq!((c, v["error"]["code"].as_str()), (400, Some("invalid_path")), "{v}");

    // Rename (never over another file), delete, and what is gone is 404.
    let (c, _) =
        s.post(&format!("/v1/sessions/{sid}/rename-file"), json!({"from": "notes/a.txt", "to": "b.txt"})).await;
    assert_eq!(c, 200);
    let (c, v) = s.post(&format!("/v1/sessions/{sid}/rename-file"), json!({"from": "b.txt", "to": "page.html"})).await;
    assert_eq!((c, v["error"]["code"].as_str()), (409, Some("file_exists")));
    assert_eq!(s.req(Method::DELETE, &f("/page.html")).send().await.unwrap().status(), 204);
    let (c, v) = s.get(&f("/page.html")).await;
    assert_eq!((c, v["error"]["code"].as_str()), (404, Some("file_not_found")));

    // Uploads may be larger than other bodies (up to 10 MiB), not more.
    let big = vec![b'x'; 2 << 20];
    let r = s.req(Method::PUT, &f("/big.bin")).body(big).send().await.unwrap();
    assert_eq!(r.status(), 201, "a 2 MiB upload");
    // (Own clients: the server drops a connection whose body it refused.)
    let huge = vec![b'x'; 11 << 20];
    let r = reqwest::Client::new().put(format!("{}{}", s.url, f("/huge.bin"))).body(huge).send().await.unwrap();
    assert_eq!(r.status(), 413, "over the upload limit");
    let title = json!({"title": "x".repeat(2 << 20)});
    let r = reqwest::Client::new().post(format!("{}/v1/sessions", s.url)).json(&title).send().await.unwrap();
    assert_eq!(r.status(), 413, "other bodies keep the 1 MiB limit");

    // Another tenant: no such session.
    let (c, _) = s.call(Method::GET, &f(""), None, Some("globex")).await;
    assert_eq!(c, 404);

    // A reference in a message becomes the file's text for the model.
    let (c, run) = s.post("/v1/runs", json!({"input": "summarise <file>b.txt</file> please", "session_id": sid})).await;
    assert_eq!(c, 202, "{run}");
    s.wait_run(run["id"].as_str().unwrap()).await;
    let sent = mock.requests()[0]["messages"].to_string();
    assert!(sent.contains("<file path=\\\"b.txt\\\">\\nhello world\\nsecond line\\n</file>"), "{sent}");
    let (c, v) = s.post("/v1/runs", json!({"input": "<file>missing.txt</file>", "session_id": sid})).await;
    assert_eq!((c, v["error"]["code"].as_str()), (404, Some("file_not_found")));
}
