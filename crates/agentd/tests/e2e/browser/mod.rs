//! The console in a real browser (headless Chromium over WebDriver) against
//! the real binary and the mock model: log in, chat with a streamed answer
//! and a tool call, answer an approval inline and from the inbox, reload
//! mid-run and mid-answer, the runs list and a run's trace, another
//! tenant's run as a 404 page. Every page is checked for console errors and with axe-core,
//! at desktop and phone widths, and screenshotted (test artifacts).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

mod driver;

use agentd_testkit::{MockOpenAi, Turn};
use serde_json::json;

use crate::auth::{call, make_key};
use crate::common::{Opts, Server};
use driver::Browser;

/// A server with auth on and acme's member key, logged in through the form.
async fn logged_in(
    test: &str,
    mock: &MockOpenAi,
    cfg: Option<&std::path::Path>,
) -> (Server, Browser, tempfile::TempDir) {
    logged_in_as(test, mock, cfg, "member").await
}

/// Like [`logged_in`], with a key of this role.
async fn logged_in_as(
    test: &str,
    mock: &MockOpenAi,
    cfg: Option<&std::path::Path>,
    role: &str,
) -> (Server, Browser, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let key = make_key(&data, &["--role", role, "--org", "acme"]);
    let s = Server::start_with(Opts {
        mock: Some(&mock.base_url),
        data_dir: Some(&data),
        config: cfg,
        ..Default::default()
    });
    let b = Browser::start(test, 1280, 900).await;
    b.goto(&format!("{}/", s.url)).await;
    b.find("#key").await;
    assert!(b.url().await.ends_with("/login"), "the console asks for a key first");
    b.check("login").await;
    b.type_into("#key", &key).await;
    b.click("button[type=submit]").await;
    b.find("textarea[aria-label=Message]").await;
    (s, b, tmp)
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_streams_an_answer_with_a_tool_call() {
    let mock = MockOpenAi::start(
        vec![
            Turn::tool("echo", json!({"text": "ping"})),
            Turn::text("All **done**: the echo came back.\n\n```rust\nfn main() { let n = 42; } // done\n```"),
        ],
        0,
    )
    .await
    .unwrap();
    let (s, b, _tmp) = logged_in("chat", &mock, None).await;
    b.check("chat-empty").await;
    b.type_into("textarea[aria-label=Message]", "please echo ping\u{E007}").await;
    b.wait_until("the answer", "return [...document.querySelectorAll('.msg.assistant .body[data-final]')].some(e => e.innerText.includes('the echo came back'))").await;
    // Markdown rendered (bold), the tool call inline and expandable, the run's end shown.
    assert_eq!(b.exec("return document.querySelector('.msg.assistant strong')?.innerText").await, "done");
    // Code is highlighted: keywords, numbers and comments marked.
    let marked = b
        .exec(
            "return ['hl-k', 'hl-n', 'hl-c'].map(c => document.querySelector('.msg.assistant code .' + c)?.innerText)",
        )
        .await;
    assert_eq!(marked, json!(["fn", "42", "// done"]));
    b.wait_until("the tool result", "return [...document.querySelectorAll('details.tool')].some(d => d.innerText.includes('echo') && d.querySelector('.status-ok'))").await;
    b.wait_until("the run's end", "return document.body.innerText.includes('done')").await;
    // The URL names the new session; the sidebar lists it as completed.
    let url = b.url().await;
    assert!(url.contains("/chat/ses_"), "{url}");
    b.wait_until("the sidebar status", "return !!document.querySelector('.sessions a[data-status=completed]')").await;
    // The model titled the session after the first exchange; the sidebar shows it live.
    b.wait_until(
        "the model's title",
        "return document.querySelector('.sessions .title')?.innerText === 'A mock session title'",
    )
    .await;
    b.check("chat-answered").await;
    // Phone width, then the other theme.
    b.resize(390, 844).await;
    b.check("chat-phone").await;
    b.click("#theme").await;
    b.check("chat-phone-other-theme").await;
    b.resize(1280, 900).await;

    // The run's page shows its steps; the runs list links to it.
    b.goto(&format!("{}/runs", s.url)).await;
    b.find("tbody a[href^='/runs/run_']").await;
    b.check("runs").await;
    b.click("tbody a[href^='/runs/run_']").await;
    b.wait_until(
        "the trace",
        "return document.body.innerText.includes('llm.completed') && document.body.innerText.includes('tool.result')",
    )
    .await;
    b.check("run-trace").await;
    // What the model saw at the last step: the tool call and its result are in it.
    b.exec("[...document.querySelectorAll('button')].filter(x => x.innerText === 'What the model saw').pop().click(); return true").await;
    b.wait_until("the context", "return !!document.querySelector('.inspector .stack') && document.querySelector('.inspector').innerText.includes('assistant → echo')").await;
    b.check("run-context").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_is_answered_inline_after_a_reload() {
    let mock =
        MockOpenAi::start(vec![Turn::tool("echo", json!({"text": "careful"})), Turn::text("approved and finished")], 0)
            .await
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agentd.toml");
    std::fs::write(&cfg, "[agents.default.policy]\nmode = \"ask\"\n").unwrap();
    let (s, b, _tmp) = logged_in("approval", &mock, Some(&cfg)).await;
    b.type_into("textarea[aria-label=Message]", "do it\u{E007}").await;
    b.find(".approval button").await;
    b.wait_until("the pending badge", "return document.getElementById('pending-count').innerText === '1'").await;
    b.check("approval-inline").await;
    // Reload while the run waits: the conversation comes back from the journal, once.
    b.exec("location.reload(); return true").await;
    b.find(".approval button").await;
    let users = b.exec("return document.querySelectorAll('.msg.user').length").await;
    assert_eq!(users, 1, "the user's message once after the reload");
    // The inbox lists it; answer it from the chat.
    b.exec("document.querySelector('.approval button').click(); return true").await;
    b.wait_until("the answer", "return document.body.innerText.includes('approved and finished')").await;
    let answers = b.exec("return [...document.querySelectorAll('.msg.assistant')].filter(e => e.innerText.includes('approved and finished')).length").await;
    assert_eq!(answers, 1, "the answer appears exactly once");
    b.goto(&format!("{}/approvals", s.url)).await;
    b.wait_until("the empty inbox", "return document.body.innerText.includes('Nothing is waiting')").await;
    b.check("approvals-empty").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenants_run_is_a_404_page() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let (s, b, tmp) = logged_in("not-found", &mock, None).await;
    let other = make_key(&tmp.path().join("data"), &["--role", "member", "--org", "globex"]);
    let (_, run) =
        call(&s, Some(&other), reqwest::Method::POST, "/v1/runs", Some(json!({"input": "secret plans"}))).await;
    b.goto(&format!("{}/runs/{}", s.url, run["id"].as_str().unwrap())).await;
    b.find("h1").await;
    let text = b.text().await;
    assert!(text.contains("Not found") && !text.contains("secret plans"), "{text}");
    b.screenshot("not-found").await;
    assert!(b.axe().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_uploaded_to_the_workspace_is_referenced_in_chat() {
    let mock = MockOpenAi::start(vec![Turn::text("first"), Turn::text("I read your notes.")], 0).await.unwrap();
    let (s, b, tmp) = logged_in("files", &mock, None).await;
    b.type_into("textarea[aria-label=Message]", "hello\u{E007}").await;
    b.wait_until("the first answer", "return document.body.innerText.includes('first')").await;
    b.click(".conv-head a[href$='/files']").await;
    b.find("#upload").await;
    let file = tmp.path().join("notes.txt");
    std::fs::write(&file, "the launch code is 1234").unwrap();
    b.type_into("#upload", file.to_str().unwrap()).await;
    b.wait_until("the upload", "return document.body.innerText.includes('notes.txt: uploaded')").await;
    b.wait_until(
        "the listing",
        "return [...document.querySelectorAll('tbody a')].some(a => a.innerText === 'notes.txt')",
    )
    .await;
    b.exec("[...document.querySelectorAll('tbody a')].find(a => a.innerText === 'notes.txt').click(); return true")
        .await;
    b.wait_until("the preview", "return document.querySelector('.preview pre')?.innerText.includes('launch code')")
        .await;
    b.check("files").await;
    b.click("a[aria-label='Use in chat: notes.txt']").await;
    b.wait_until(
        "the prefilled reference",
        "return document.querySelector('textarea').value.includes('<file>notes.txt</file>')",
    )
    .await;
    b.type_into("textarea[aria-label=Message]", "summarise it\u{E007}").await;
    b.wait_until("the answer", "return document.body.innerText.includes('I read your notes.')").await;
    let sent = mock.requests().last().unwrap()["messages"].to_string();
    assert!(sent.contains("the launch code is 1234"), "the model got the file's text: {sent}");
    // `@` picks a workspace file by name: Enter turns the pick into a reference.
    b.type_into("textarea[aria-label=Message]", "compare with @note").await;
    b.wait_until("the picker", "return document.querySelector('#file-picker li')?.innerText === 'notes.txt'").await;
    b.check("file-picker").await;
    b.type_into("textarea[aria-label=Message]", "\u{E007}").await;
    assert_eq!(
        b.exec("return document.querySelector('textarea').value").await,
        "compare with <file>notes.txt</file> ",
        "the pick replaced the @ query and nothing was sent"
    );
    assert_eq!(mock.requests().len(), 2);
    drop(s);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_chats_stream_at_once_with_live_sidebar_states() {
    let mock = MockOpenAi::start_with_latency(
        vec![Turn::text("answer one"), Turn::text("answer two")],
        0,
        std::time::Duration::from_millis(1500),
    )
    .await
    .unwrap();
    let (s, b, tmp) = logged_in("two-chats", &mock, None).await;
    b.type_into("textarea[aria-label=Message]", "first chat\u{E007}").await;
    b.wait_until("the first session in the sidebar", "return document.querySelectorAll('.sessions a').length === 1")
        .await;
    b.click("a[aria-label='New chat']").await;
    b.find("textarea[aria-label=Message]").await;
    b.type_into("textarea[aria-label=Message]", "second chat\u{E007}").await;
    // Both run at once: the sidebar shows two sessions, both running, from one feed.
    b.wait_until(
        "two running sessions",
        "return document.querySelectorAll('.sessions a[data-status=running]').length === 2",
    )
    .await;
    b.check("two-running").await;
    b.wait_until(
        "both completed",
        "return document.querySelectorAll('.sessions a[data-status=completed]').length === 2",
    )
    .await;
    b.wait_until("this chat's answer", "return document.body.innerText.includes('answer')").await;
    // The other chat finished while away: it is marked unread.
    assert_eq!(b.exec("return document.querySelectorAll('.sessions .dot.unread').length").await, 1);
    b.check("two-completed").await;
    // A run started elsewhere (here: the API) in the open session shows live too.
    let key = make_key(&tmp.path().join("data"), &["--role", "member", "--org", "acme"]);
    let sid = b.url().await.rsplit('/').next().unwrap().to_string();
    let body = json!({"input": "from the API", "session_id": sid});
    assert_eq!(call(&s, Some(&key), reqwest::Method::POST, "/v1/runs", Some(body)).await.0, 202);
    b.wait_until(
        "the API's run",
        "return [...document.querySelectorAll('.msg.user .body')].some(e => e.innerText === 'from the API')",
    )
    .await;
    b.wait_until("its answer", "return document.querySelectorAll('.msg.assistant .body[data-final]').length === 2")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn manage_pages_call_a_tool_from_its_schema_upload_a_skill_and_show_diagnostics() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let (s, b, tmp) = logged_in_as("manage", &mock, None, "admin").await;
    let key = make_key(&tmp.path().join("data"), &["--role", "admin", "--org", "acme"]);
    b.goto(&format!("{}/manage#tools", s.url)).await;
    b.wait_until(
        "the tools",
        "return [...document.querySelectorAll('summary.mono')].some(e => e.innerText === 'echo')",
    )
    .await;
    b.check("manage-tools").await;
    // The echo tool's form comes from its schema; calling it shows the result.
    b.exec("document.querySelector('details[data-tool=echo]').open = true; return true").await;
    b.type_into("details[data-tool=echo] .toolform textarea", r#"{"text": "hello from the form"}"#).await;
    b.click("details[data-tool=echo] .toolform button").await;
    b.wait_until(
        "the tool's result",
        "return [...document.querySelectorAll('.toolform pre')].some(p => p.innerText.includes('hello from the form'))",
    )
    .await;

    b.goto(&format!("{}/manage#skills", s.url)).await;
    b.find("#skill-md").await;
    b.type_into("#skill-md", "---\nname: greeter\ndescription: says hello nicely\n---\nGreet warmly.\n").await;
    b.exec("[...document.querySelectorAll('button')].find(x => x.innerText === 'Upload skill').click(); return true")
        .await;
    b.wait_until("the uploaded skill", "return document.body.innerText.includes('says hello nicely')").await;
    b.check("manage-skills").await;
    // A whole skill as a .zip (deflated, a folder inside, a file beside SKILL.md).
    let zip = tmp.path().join("lookup.zip");
    let made = std::process::Command::new("python3")
        .args(["-c", "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED)\nz.writestr('lookup/SKILL.md', '---\\nname: lookup\\ndescription: finds things in tables\\n---\\nSee ref.md.\\n')\nz.writestr('lookup/ref.md', 'the reference text ' * 50)\nz.close()"])
        .arg(&zip)
        .status()
        .unwrap();
    assert!(made.success());
    b.type_into("#skill-zip", zip.to_str().unwrap()).await;
    b.wait_until("the zipped skill", "return document.body.innerText.includes('finds things in tables')").await;
    let (_, skill) = call(&s, Some(&key), reqwest::Method::GET, "/v1/skills/lookup", None).await;
    assert!(skill["files"]["ref.md"].as_str().is_some_and(|t| t.starts_with("the reference text")), "{skill}");
    b.exec("document.querySelector(\"button[aria-label='View lookup']\").click(); return true").await;
    b.wait_until("the skill's files", "return document.body.innerText.includes('ref.md')").await;

    // An agent: created, edited from the list, tried in a chat with it chosen.
    b.goto(&format!("{}/manage#agents", s.url)).await;
    b.find("#agent-name").await;
    b.type_into("#agent-name", "helper").await;
    b.type_into("#agent-prompt", "You help.").await;
    b.exec("[...document.querySelectorAll('button')].find(x => x.innerText === 'Create agent').click(); return true")
        .await;
    b.find("button[aria-label='Edit helper']").await;
    b.click("button[aria-label='Edit helper']").await;
    b.exec("const p = document.getElementById('agent-prompt'); p.value = 'You help a lot.'; return true").await;
    b.exec("[...document.querySelectorAll('button')].find(x => x.innerText === 'Save agent').click(); return true")
        .await;
    b.find("a[aria-label='Try helper in a chat']").await;
    let (_, agents) = call(&s, Some(&key), reqwest::Method::GET, "/v1/agents", None).await;
    let helper = agents["data"].as_array().unwrap().iter().find(|a| a["name"] == "helper").cloned().unwrap();
    assert_eq!(helper["system_prompt"], "You help a lot.");
    b.check("manage-agents-edited").await;
    b.click("a[aria-label='Try helper in a chat']").await;
    b.wait_until("the agent chosen", "return document.querySelector('select[aria-label=Agent]')?.value === 'helper'")
        .await;
    // A template previews live from sample arguments.
    b.goto(&format!("{}/manage#templates", s.url)).await;
    b.find("#tpl-content").await;
    b.type_into("#tpl-content", "Hello {{ name }}!").await;
    b.type_into("#tpl-args", r#"{"name": "Ada"}"#).await;
    b.wait_until("the preview", "return document.getElementById('tpl-preview').innerText === 'Hello Ada!'").await;
    for section in ["agents", "mcp", "templates", "models", "keys", "usage"] {
        b.goto(&format!("{}/manage#{section}", s.url)).await;
        b.wait_until("the section", "return !!document.querySelector('table')").await;
        b.check(&format!("manage-{section}")).await;
    }
    b.goto(&format!("{}/diagnostics", s.url)).await;
    b.wait_until("the checks", "return document.body.innerText.includes('database answers')").await;
    assert!(b.text().await.contains("provider openai"), "{}", b.text().await);
    b.check("diagnostics").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_attached_in_chat_reaches_the_model() {
    use base64::Engine;
    const PNG: &str =
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
    let mock = MockOpenAi::start(vec![Turn::text("a tiny picture")], 0).await.unwrap();
    let (_s, b, tmp) = logged_in("image", &mock, None).await;
    let file = tmp.path().join("dot.png");
    std::fs::write(&file, base64::engine::general_purpose::STANDARD.decode(PNG).unwrap()).unwrap();
    b.type_into("#attach", file.to_str().unwrap()).await;
    b.find("img.thumb").await;
    b.check("image-attached").await;
    b.type_into("textarea[aria-label=Message]", "what is this?\u{E007}").await;
    b.wait_until("the answer", "return document.body.innerText.includes('a tiny picture')").await;
    let sent = mock.requests()[0]["messages"].to_string();
    assert!(sent.contains("data:image/png;base64,"), "the image went with the message: {sent}");
    assert_eq!(b.exec("return document.querySelectorAll('img.thumb').length").await, 0, "cleared after sending");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_run_is_retried_and_thinking_is_folded() {
    let mock = MockOpenAi::start(
        vec![
            Turn::Status(400, "the model refused the request".into()),
            Turn::Thinking {
                thinking: vec!["pondering the question".into()],
                text: vec!["worked the second time".into()],
            },
        ],
        0,
    )
    .await
    .unwrap();
    let (_s, b, _tmp) = logged_in("retry", &mock, None).await;
    b.type_into("textarea[aria-label=Message]", "try this\u{E007}").await;
    b.wait_until("the failure", "return document.body.innerText.includes('failed:')").await;
    b.check("run-failed").await;
    b.exec("[...document.querySelectorAll('button')].find(x => x.innerText === 'Retry').click(); return true").await;
    b.wait_until("the retried answer", "return document.body.innerText.includes('worked the second time')").await;
    // The thinking is there, folded above the answer.
    let folded = b.exec("const d = document.querySelector('details.thinking'); return !!d && !d.open && d.textContent.includes('pondering')").await;
    assert_eq!(folded, true);
    assert_eq!(mock.requests().len(), 2);
    b.check("run-retried").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_mid_answer_shows_the_whole_answer_exactly_once() {
    let words: Vec<String> = "Once upon a time a run streamed its answer word by word while the page reloaded"
        .split(' ')
        .map(|w| format!("{w} "))
        .collect();
    let whole = words.concat();
    let mock = MockOpenAi::start(vec![Turn::Paced(std::time::Duration::from_millis(250), words)], 0).await.unwrap();
    let (_s, b, _tmp) = logged_in("reload-mid-answer", &mock, None).await;
    b.type_into("textarea[aria-label=Message]", "tell me a story\u{E007}").await;
    b.wait_until(
        "the first words",
        "return document.querySelector('.msg.assistant .body')?.innerText.includes('upon')",
    )
    .await;
    b.exec("location.reload(); return true").await;
    // After the reload, the text so far comes back at once (not only what streams later)…
    b.wait_until(
        "the text so far",
        "const e = document.querySelector('.msg.assistant .body'); return !!e && !e.dataset.final && e.innerText.startsWith('Once upon')",
    )
    .await;
    b.check("reload-mid-answer").await;
    // …and the finished answer is there once, whole.
    b.wait_until("the final answer", "return !!document.querySelector('.msg.assistant .body[data-final]')").await;
    let bodies = b.exec("return [...document.querySelectorAll('.msg.assistant .body')].map(e => e.innerText)").await;
    assert_eq!(bodies, json!([whole.trim()]), "one answer, whole");
    assert_eq!(b.exec("return document.querySelectorAll('.msg.user').length").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_answered_from_the_inbox_lets_the_run_finish() {
    let mock =
        MockOpenAi::start(vec![Turn::tool("echo", json!({"text": "from the inbox"})), Turn::text("inbox ok")], 0)
            .await
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agentd.toml");
    std::fs::write(&cfg, "[agents.default.policy]\nmode = \"ask\"\n").unwrap();
    let (s, b, _tmp) = logged_in("approval-inbox", &mock, Some(&cfg)).await;
    b.type_into("textarea[aria-label=Message]", "needs approval\u{E007}").await;
    b.find(".approval button").await;
    let chat = b.url().await;
    b.goto(&format!("{}/approvals", s.url)).await;
    b.wait_until(
        "the pending request",
        "return document.querySelector('.approval')?.innerText.includes('from the inbox')",
    )
    .await;
    b.check("approvals-inbox").await;
    b.exec(
        "[...document.querySelectorAll('.approval button')].find(x => x.innerText === 'Approve').click(); return true",
    )
    .await;
    // The list updates live: the answered request leaves it.
    b.wait_until("the empty inbox", "return document.body.innerText.includes('Nothing is waiting')").await;
    b.goto(&chat).await;
    // The finished conversation comes back from the session's history: the
    // question, the tool call with its result, the answer.
    b.wait_until("the run's answer", "return document.body.innerText.includes('inbox ok')").await;
    b.wait_until(
        "the tool's result",
        "return document.querySelector('details.tool pre.result')?.textContent.includes('from the inbox')",
    )
    .await;
    assert_eq!(b.exec("return document.querySelectorAll('.msg.user').length").await, 1);
    b.check("chat-history").await;
    assert_eq!(mock.requests().len(), 2, "the tool ran and the model answered after the approval");
}

/// Measures, not asserts: how late a token reaches the page's DOM after the
/// model sent it, while 10 chats stream at once (the page shows one; the
/// sidebar's feed carries all ten). Run with `cargo nextest run --features
/// agentd/test-tools --run-ignored only -E 'test(token_to_dom)' --no-capture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement; prints numbers"]
async fn token_to_dom_latency_with_ten_chats() {
    const CHATS: usize = 10;
    const TOKENS: usize = 100;
    let turns = (0..CHATS).map(|_| Turn::Stamped(std::time::Duration::from_millis(20), TOKENS)).collect();
    let mock = MockOpenAi::start(turns, 0).await.unwrap();
    let (s, b, tmp) = logged_in("token-latency", &mock, None).await;
    let key = make_key(&tmp.path().join("data"), &["--role", "member", "--org", "acme"]);
    let mut sessions = vec![];
    for i in 0..CHATS {
        let body = json!({"title": format!("chat {i}")});
        let (_, ses) = call(&s, Some(&key), reqwest::Method::POST, "/v1/sessions", Some(body)).await;
        sessions.push(ses["id"].as_str().unwrap().to_string());
    }
    b.goto(&format!("{}/chat/{}", s.url, sessions[0])).await;
    b.find("textarea[aria-label=Message]").await;
    // Every token's delay: the page's clock when its stamp appears minus the stamp (same machine).
    b.exec(
        "window.__lat = []; const seen = new Set();
        new MutationObserver(() => {
          const now = (performance.timeOrigin + performance.now()) * 1000;
          for (const e of document.querySelectorAll('.msg.assistant .body'))
            for (const m of e.textContent.matchAll(/\\[t=(\\d+)\\]/g))
              if (!seen.has(m[1])) { seen.add(m[1]); window.__lat.push((now - Number(m[1])) / 1000); }
        }).observe(document.body, { subtree: true, childList: true, characterData: true });
        return true",
    )
    .await;
    for sid in &sessions {
        let body = json!({"input": "go", "session_id": sid});
        assert_eq!(call(&s, Some(&key), reqwest::Method::POST, "/v1/runs", Some(body)).await.0, 202);
    }
    b.wait_until("the whole answer", "return !!document.querySelector('.msg.assistant .body[data-final]')").await;
    b.wait_until(
        "all ten done",
        "return document.querySelectorAll('.sessions a[data-status=completed]').length === 10",
    )
    .await;
    let got = b.exec("return window.__lat").await;
    let mut all: Vec<f64> = got.as_array().unwrap().iter().filter_map(|v| v.as_f64()).collect();
    all.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| all[((all.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "token→DOM latency while {CHATS} chats stream ({TOKENS} tokens each): n={} median={:.1} ms p99={:.1} ms max={:.1} ms",
        all.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
    assert!(all.len() >= TOKENS / 2, "most tokens were seen streaming: {}", all.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_page_shows_its_tree_and_the_chat_list_hides_child_sessions() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    mock.rule("TREE-ROOT", vec![Turn::tool("delegate", json!({"task": "TREE-KID look"})), Turn::text("root: {tool}")]);
    mock.rule("TREE-KID", vec![Turn::text("kid answer")]);
    let (s, b, tmp) = logged_in("run-tree", &mock, None).await;
    let key = make_key(&tmp.path().join("data"), &["--role", "member", "--org", "acme"]);
    let (_, run) = call(&s, Some(&key), reqwest::Method::POST, "/v1/runs", Some(json!({"input": "TREE-ROOT"}))).await;
    let id = run["id"].as_str().unwrap().to_string();
    for _ in 0..500 {
        let (_, r) = call(&s, Some(&key), reqwest::Method::GET, &format!("/v1/runs/{id}"), None).await;
        if r["status"] == "completed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (_, kids) = call(&s, Some(&key), reqwest::Method::GET, &format!("/v1/runs/{id}/children"), None).await;
    let kid = kids["data"][0]["id"].as_str().unwrap().to_string();
    b.goto(&format!("{}/runs/{id}", s.url)).await;
    b.wait_until("the run tree", "return document.querySelectorAll('ul.tree a').length === 1").await;
    let text = b.text().await;
    assert!(text.contains("Run tree") && text.contains(&kid) && text.contains("completed"), "{text}");
    b.check("run-tree").await;
    // The child's page links back to its parent.
    b.click("ul.tree a").await;
    b.wait_until("the parent link", &format!("return document.body.innerText.includes('Delegated by {id}')")).await;
    // The chat list shows the parent's session, not the child's.
    b.goto(&format!("{}/chat", s.url)).await;
    b.wait_until("the sessions", "return document.querySelectorAll('.sessions a').length >= 1").await;
    assert_eq!(b.exec("return document.querySelectorAll('.sessions a').length").await, 1);
    // Teams are managed and run from the console.
    let team = json!({"name": "crew", "lead": {"agent": "default", "role": "lead"}});
    let (c, v) = call(&s, Some(&key), reqwest::Method::POST, "/v1/teams", Some(team)).await;
    assert_eq!(c, 201, "{v}");
    b.goto(&format!("{}/manage#teams", s.url)).await;
    b.wait_until("the team row", "return document.body.innerText.includes('lead: lead (default)')").await;
    b.check("teams").await;
}

/// A prompt saved on the manage page is inserted into the composer at the
/// caret and sent, at desktop and phone widths.
#[tokio::test(flavor = "multi_thread")]
async fn a_saved_prompt_is_inserted_into_the_composer() {
    let mock = MockOpenAi::start(vec![Turn::text("reviewed")], 0).await.unwrap();
    let (s, b, _tmp) = logged_in("saved-prompts", &mock, None).await;
    b.goto(&format!("{}/manage#prompts", s.url)).await;
    b.find("#prompt-name").await;
    b.type_into("#prompt-name", "review").await;
    b.type_into("#prompt-text", "Review this <diff> for bugs.").await;
    b.type_into("#prompt-tags", "code, review").await;
    b.click("form.filters button[type=submit]").await;
    b.wait_until(
        "the saved prompt in the table",
        "return [...document.querySelectorAll('tbody pre')].some(p => p.innerText === 'Review this <diff> for bugs.')",
    )
    .await;
    b.check("manage-prompts").await;
    b.resize(390, 844).await;
    b.check("manage-prompts-phone").await;
    b.resize(1280, 900).await;

    b.goto(&format!("{}/chat", s.url)).await;
    b.wait_until(
        "the saved prompts in the composer",
        "return [...document.querySelectorAll('select.saved-prompts option')].some(o => o.innerText === 'review (code, review)')",
    )
    .await;
    b.check("composer-saved-prompts").await;
    b.type_into("textarea[aria-label=Message]", "Please: ").await;
    b.exec(
        "const s = document.querySelector('select.saved-prompts'); s.value = '0'; \
         s.dispatchEvent(new Event('change')); return true",
    )
    .await;
    assert_eq!(
        b.exec("return document.querySelector('textarea').value").await,
        "Please: Review this <diff> for bugs.",
        "inserted at the caret, as text"
    );
    b.type_into("textarea[aria-label=Message]", "\u{E007}").await;
    b.wait_until("the answer", "return document.body.innerText.includes('reviewed')").await;
    let sent = mock.requests().last().unwrap()["messages"].to_string();
    assert!(sent.contains("Please: Review this <diff> for bugs."), "{sent}");
    // On a phone the open conversation's composer offers them too.
    b.resize(390, 844).await;
    b.wait_until(
        "the picker on a phone",
        "return document.querySelector('select.saved-prompts')?.offsetParent !== null",
    )
    .await;
    b.check("composer-saved-prompts-phone").await;
    drop(s);
}
