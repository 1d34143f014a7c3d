// agentd console: small ES module, no build step. Talks to /v1 with the
// login cookie; every change carries the CSRF token from the page's meta.

const csrf = document.querySelector('meta[name="csrf-token"]')?.content || '';
const main = document.getElementById('main');

// ---- helpers ----------------------------------------------------------

/** Calls the API; throws an Error with the API's message on a non-2xx answer. */
async function api(method, path, body) {
  const headers = { 'x-csrf-token': csrf };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const resp = await fetch('/v1' + path, {
    method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (resp.status === 401) { location.href = '/login'; throw new Error('logged out'); }
  if (resp.status === 204) return null;
  const data = await resp.json().catch(() => null);
  if (!resp.ok) throw new Error(data?.error?.message || `HTTP ${resp.status}`);
  return data;
}

/** Builds an element: el('a', {href}, 'text', child). Strings become text nodes (never HTML). */
function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat(Infinity)) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

/** Markdown to HTML, safe by construction: everything is escaped first, then
 *  a small subset (code blocks, inline code, bold, italics, http(s) links,
 *  headings, lists, paragraphs) is formatted. No raw HTML passes. */
function md(src) {
  const blocks = String(src).split(/```/);
  let out = '';
  blocks.forEach((b, i) => {
    if (i % 2 === 1) {
      const nl = b.indexOf('\n');
      const lang = nl > 0 ? b.slice(0, nl).trim() : '';
      const code = nl > 0 ? b.slice(nl + 1) : b;
      out += `<pre><code${lang ? ` data-lang="${esc(lang)}"` : ''}>${highlight(code.replace(/\n$/, ''), lang)}</code></pre>`;
      return;
    }
    for (const para of b.split(/\n{2,}/)) {
      if (!para.trim()) continue;
      const lines = para.split('\n');
      if (lines.every((l) => /^\s*([-*]|\d+\.)\s+/.test(l))) {
        const ordered = /^\s*\d+\./.test(lines[0]);
        out += `<${ordered ? 'ol' : 'ul'}>` + lines.map((l) => `<li>${inline(l.replace(/^\s*([-*]|\d+\.)\s+/, ''))}</li>`).join('') + `</${ordered ? 'ol' : 'ul'}>`;
      } else if (/^#{1,4}\s/.test(para)) {
        const n = para.match(/^#+/)[0].length;
        out += `<h${n + 2}>${inline(para.replace(/^#+\s*/, ''))}</h${n + 2}>`;
      } else {
        out += `<p>${lines.map(inline).join('<br>')}</p>`;
      }
    }
  });
  return out;
}

const KEYWORDS = new Set(('as async await break case catch class const continue def default del do elif else enum export extends false ' +
  'fn for from func function go if impl import in interface let loop match mod mut new nil None not null or package pass pub ' +
  'raise return self Self static struct switch this throw true True False try type typeof use var void where while with yield').split(' '));
/** Code to HTML with comments, strings, numbers and common keywords marked;
 *  each token is escaped, so the result is as safe as `esc`. */
function highlight(code, lang) {
  const hash = /^(py|python|sh|bash|shell|zsh|ruby|rb|toml|yaml|yml|dockerfile|make)$/i.test(lang || '');
  const re = hash
    ? /(#[^\n]*)|("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')|(\b\d[\d_.]*\b)|([A-Za-z_]\w*)/g
    : /(\/\/[^\n]*|\/\*[\s\S]*?\*\/)|("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`)|(\b\d[\d_.]*\b)|([A-Za-z_]\w*)/g;
  let out = ''; let at = 0;
  for (const m of code.matchAll(re)) {
    out += esc(code.slice(at, m.index));
    const cls = m[1] ? 'hl-c' : m[2] ? 'hl-s' : m[3] ? 'hl-n' : KEYWORDS.has(m[4]) ? 'hl-k' : '';
    out += cls ? `<span class="${cls}">${esc(m[0])}</span>` : esc(m[0]);
    at = m.index + m[0].length;
  }
  return out + esc(code.slice(at));
}

function inline(s) {
  return esc(s)
    .replace(/`([^`]+)`/g, '<code>$1</code>')
    .replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>')
    .replace(/(^|[\s(])\*([^*\s][^*]*)\*/g, '$1<em>$2</em>')
    .replace(/\[([^\]]+)\]\((https?:\/\/[^\s)&]+)\)/g, '<a href="$2" rel="noopener noreferrer" target="_blank">$1</a>');
}

function rel(ts) {
  const d = new Date(ts);
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  const text = s < 60 ? `${s}s ago` : s < 3600 ? `${Math.round(s / 60)}m ago` : s < 86400 ? `${Math.round(s / 3600)}h ago` : d.toLocaleDateString();
  return el('time', { datetime: ts, title: d.toLocaleString() }, text);
}

function copyable(id) {
  return el('span', { class: 'mono' }, id, ' ', el('button', { type: 'button', class: 'copy', 'aria-label': `Copy ${id}`, onclick: () => navigator.clipboard?.writeText(id) }, 'copy'));
}

function textOf(message) {
  return (message?.content || []).filter((p) => p.type === 'text').map((p) => p.text).join('');
}

function summary(args) {
  const s = typeof args === 'string' ? args : JSON.stringify(args);
  return s.length > 80 ? s.slice(0, 77) + '…' : s;
}

// ---- chrome: theme, nav, pending approvals ---------------------------------

const theme = localStorage.getItem('agentd-theme');
if (theme) document.documentElement.dataset.theme = theme;
document.getElementById('theme')?.addEventListener('click', () => {
  const dark = matchMedia('(prefers-color-scheme: dark)').matches;
  const now = document.documentElement.dataset.theme || (dark ? 'dark' : 'light');
  const next = now === 'dark' ? 'light' : 'dark';
  document.documentElement.dataset.theme = next;
  localStorage.setItem('agentd-theme', next);
});
for (const a of document.querySelectorAll('.top nav a')) {
  const p = a.getAttribute('href');
  if (p === '/' ? ['chat'].includes(main.dataset.page) : location.pathname.startsWith(p)) a.setAttribute('aria-current', 'page');
}

/** One stream of the tenant's run lifecycle events for the whole page. */
const feedHandlers = [];
function onFeed(f) { feedHandlers.push(f); }
const feed = new EventSource('/v1/events');
for (const t of ['run.created', 'run.started', 'run.resumed', 'approval.requested', 'approval.resolved', 'run.completed', 'run.failed', 'run.cancelled', 'session.titled', 'children.waiting', 'children.done']) {
  feed.addEventListener(t, (e) => { const d = JSON.parse(e.data); feedHandlers.forEach((f) => f(d)); });
}

async function refreshPending() {
  const badge = document.getElementById('pending-count');
  try {
    const page = await api('GET', '/approvals?status=pending&limit=100');
    const n = page.data.length;
    badge.hidden = n === 0;
    badge.textContent = String(n);
  } catch { /* the badge is a hint */ }
}
onFeed((d) => { if (d.type.startsWith('approval.')) refreshPending(); });
refreshPending();

// ---- a run's live view (used by chat) -----------------------------------

/** Renders a run's events into `box` as they come; returns a handle to stop it. */
function followRun(runId, box, onEnd, onRetry) {
  let bubble = null; let thinking = null; let streamed = ''; let asked = '';
  const tools = new Map();
  const assistant = () => {
    if (!bubble) {
      thinking = null;
      bubble = el('div', { class: 'body' });
      box.append(el('article', { class: 'msg assistant' }, el('div', { class: 'who' }, 'assistant'), bubble));
    }
    return bubble;
  };
  const thinkingPre = () => {
    const b = assistant();
    if (!thinking) { thinking = el('pre', {}); b.before(el('details', { class: 'thinking' }, el('summary', {}, 'Thinking'), thinking)); }
    return thinking;
  };
  const scroll = () => { box.scrollTop = box.scrollHeight; };
  const es = new EventSource(`/v1/runs/${encodeURIComponent(runId)}/events`);
  const on = (t, f) => es.addEventListener(t, (e) => { f(JSON.parse(e.data)); scroll(); });
  on('run.created', (ev) => { asked = ev.data.input; box.append(userMsg(ev.data.input)); });
  on('run.steered', (ev) => box.append(userMsg(ev.data.input)));
  on('llm.delta', (d) => {
    if (d.thinking) thinkingPre().textContent += d.thinking;
    if (d.text) { streamed += d.text; assistant().textContent = streamed; }
  });
  // The text streamed before this page listened (a reload mid-answer): it replaces, never appends.
  on('llm.partial', (d) => {
    if (d.thinking) thinkingPre().textContent = d.thinking;
    streamed = d.text || ''; assistant().textContent = streamed;
  });
  on('llm.completed', (ev) => {
    const text = textOf(ev.data.message);
    const b = assistant();
    // Thinking that streamed before this page listened comes with the message.
    if (ev.data.message.thinking && !thinking) b.before(thoughts(ev.data.message.thinking));
    // A step that only calls tools says nothing: no empty bubble.
    if (text.trim()) { b.innerHTML = md(text); b.dataset.final = '1'; } else if (!b.previousElementSibling?.matches?.('details.thinking')) b.parentElement.remove();
    bubble = null; streamed = '';
  });
  on('tool.called', (ev) => {
    const d = ev.data;
    const result = el('pre', { class: 'result' }, '…');
    const state = el('span', { class: 'status-wait' }, 'running');
    const row = el('details', { class: 'tool', 'data-call': d.call_id },
      el('summary', {}, `${d.name}(${summary(d.arguments)}) `, state),
      el('div', {}, el('strong', {}, 'Arguments'), el('pre', {}, JSON.stringify(d.arguments, null, 2))),
      el('div', {}, el('strong', {}, 'Result'), result));
    tools.set(d.call_id, { result, state, row });
    box.append(el('div', { class: 'msg' }, row));
  });
  on('tool.policy', (ev) => {
    const t = tools.get(ev.data.call_id);
    if (t) t.row.append(el('div', { class: 'hint' }, `policy: ${ev.data.decision || ''} ${ev.data.rule ? '(' + ev.data.rule + ')' : ''}`));
  });
  on('tool.result', (ev) => {
    const d = ev.data; const t = tools.get(d.call_id);
    if (!t) return;
    t.result.textContent = (d.content || []).map((p) => (p.type === 'text' ? p.text : `[${p.type}]`)).join('\n');
    t.state.className = d.is_error ? 'status-bad' : 'status-ok';
    t.state.textContent = `${d.status} · ${d.duration_ms} ms`;
    if (d.sandbox) t.row.append(el('div', { class: 'hint' }, `sandbox: ${JSON.stringify(d.sandbox)}`));
  });
  on('approval.requested', (ev) => box.append(approvalCard(ev.data)));
  on('approval.resolved', (ev) => {
    const card = box.querySelector(`[data-approval="${CSS.escape(ev.data.approval_id)}"]`);
    if (card) card.replaceWith(el('div', { class: 'hint' }, `approval ${ev.data.decision}`));
  });
  const end = (text, cls, retry) => {
    const again = retry && onRetry ? el('button', { type: 'button', class: 'ghost', onclick: () => onRetry(asked) }, 'Retry') : null;
    box.append(el('div', { class: `msg hint ${cls}`, role: 'status' }, text, ' ', again));
    es.close(); onEnd?.();
  };
  on('run.completed', () => end('done', 'status-ok', false));
  on('run.failed', (ev) => end(`failed: ${ev.data.error?.message || ev.data.error?.code || ''}`, 'status-bad', true));
  on('run.cancelled', () => end('cancelled', '', true));
  return { close: () => es.close() };
}

/** Reasoning text, folded. */
function thoughts(text) {
  return el('details', { class: 'thinking' }, el('summary', {}, 'Thinking'), el('pre', {}, text));
}

function userMsg(text, images = []) {
  return el('article', { class: 'msg user' }, el('div', { class: 'who' }, 'you'), el('div', { class: 'body' }, text),
    images.length ? el('div', { class: 'thumbs' }, images.map((src) => el('img', { src, alt: 'attached image', class: 'thumb' }))) : null);
}

function approvalCard(d) {
  const args = el('textarea', { rows: 4, 'aria-label': 'Arguments to run with', hidden: true }, JSON.stringify(d.arguments_sanitized, null, 2));
  const reason = el('input', { type: 'text', placeholder: 'reason (for deny)', 'aria-label': 'Reason' });
  const msg = el('div', { class: 'error', role: 'alert' });
  const answer = async (decision) => {
    const body = { decision };
    if (reason.value) body.reason = reason.value;
    if (!args.hidden && decision !== 'deny') {
      try { body.arguments = JSON.parse(args.value); } catch { msg.textContent = 'The arguments are not valid JSON.'; return; }
    }
    try { await api('POST', `/approvals/${encodeURIComponent(d.approval_id)}`, body); } catch (e) { msg.textContent = e.message; }
  };
  return el('div', { class: 'approval msg', 'data-approval': d.approval_id },
    el('div', {}, el('strong', {}, `Approve ${d.tool}?`), ` risk: ${d.risk}`),
    el('ul', {}, (d.reasons || []).map((r) => el('li', {}, r))),
    el('pre', {}, JSON.stringify(d.arguments_sanitized, null, 2)),
    args, reason, msg,
    el('div', { class: 'actions' },
      el('button', { type: 'button', onclick: () => answer('approve') }, 'Approve'),
      el('button', { type: 'button', class: 'ghost', onclick: () => answer('approve_for_session') }, 'Approve for session'),
      el('button', { type: 'button', class: 'ghost', onclick: () => { args.hidden = !args.hidden; } }, 'Edit arguments'),
      el('button', { type: 'button', class: 'danger', onclick: () => answer('deny') }, 'Deny')));
}

// ---- chat ------------------------------------------------------------------

async function chat(sessionId) {
  const status = new Map(); const unread = new Set();
  const list = el('ul', { class: 'sessions', 'aria-label': 'Sessions' });
  const search = el('input', { type: 'search', placeholder: 'Search sessions', 'aria-label': 'Search sessions' });
  const sidebar = el('nav', { class: 'sidebar', 'aria-label': 'Sessions' },
    el('div', { class: 'tools' }, search, el('a', { href: '/chat', class: 'mono', 'aria-label': 'New chat' }, 'New')), list);
  const box = el('div', { class: 'messages', 'aria-live': 'polite' });
  const input = el('textarea', { rows: 2, placeholder: 'Message (Enter sends, Shift+Enter new line, Esc stops)', 'aria-label': 'Message' });
  const agent = el('select', { 'aria-label': 'Agent' });
  const model = el('select', { 'aria-label': 'Model' }, el('option', { value: '' }, 'default model'));
  const send = el('button', { type: 'submit' }, 'Send');
  // A saved prompt (Manage → Saved prompts) is inserted at the caret.
  const saved = el('select', { 'aria-label': 'Insert a saved prompt', class: 'saved-prompts' }, el('option', { value: '' }, 'Insert a saved prompt…'));
  let savedPrompts = [];
  api('GET', '/prompts').then((p) => {
    savedPrompts = p.data;
    saved.append(...p.data.map((d, i) => el('option', { value: String(i) }, (d.tags || []).length ? `${d.name} (${d.tags.join(', ')})` : d.name)));
    saved.hidden = !p.data.length;
  }).catch(() => { saved.hidden = true; });
  saved.addEventListener('change', () => {
    const d = savedPrompts[Number(saved.value)]; saved.value = '';
    if (!d) return;
    const [from, to] = [input.selectionStart, input.selectionEnd];
    input.value = `${input.value.slice(0, from)}${d.text}${input.value.slice(to)}`;
    input.focus(); input.selectionStart = input.selectionEnd = from + d.text.length;
  });
  // Images: attached or pasted, sent as data URLs with the message.
  let images = [];
  const thumbs = el('div', { class: 'thumbs' });
  const attachInput = el('input', { type: 'file', accept: 'image/png,image/jpeg,image/gif,image/webp', multiple: true, id: 'attach', class: 'visually-hidden' });
  const addImages = (list) => {
    for (const f of [...list].filter((f) => f.type.startsWith('image/'))) {
      const r = new FileReader();
      r.onload = () => {
        images.push(r.result);
        thumbs.append(el('img', { src: r.result, alt: `attached ${f.name || 'image'}`, class: 'thumb' }));
      };
      r.readAsDataURL(f);
    }
  };
  attachInput.addEventListener('change', () => addImages(attachInput.files));
  const attachLabel = el('label', { for: 'attach', class: 'ghost attach' }, 'Attach image');
  const stop = el('button', { type: 'button', class: 'ghost', hidden: true }, 'Stop');
  const error = el('div', { class: 'error', role: 'alert' });
  // `@` opens a picker of the session's workspace files; a pick becomes <file>path</file>.
  const picker = el('ul', { class: 'picker', role: 'listbox', id: 'file-picker', 'aria-label': 'Workspace files', hidden: true });
  let pickFrom = -1; let pickSeq = 0;
  const closePicker = () => { picker.hidden = true; picker.replaceChildren(); pickFrom = -1; input.removeAttribute('aria-activedescendant'); };
  const choose = (path) => {
    const caret = input.selectionStart;
    input.value = `${input.value.slice(0, pickFrom)}<file>${path}</file> ${input.value.slice(caret)}`;
    closePicker(); input.focus();
  };
  const moveSelection = (by) => {
    const items = [...picker.children]; if (!items.length) return;
    const i = Math.max(0, items.findIndex((x) => x.getAttribute('aria-selected') === 'true'));
    const next = items[(i + by + items.length) % items.length];
    items.forEach((x) => x.setAttribute('aria-selected', String(x === next)));
    input.setAttribute('aria-activedescendant', next.id);
  };
  const openPicker = async () => {
    const before = input.value.slice(0, input.selectionStart);
    const m = before.match(/(^|\s)@([\w./-]*)$/);
    if (!m || !sessionId) { closePicker(); return; }
    pickFrom = before.length - m[2].length - 1;
    const seq = ++pickSeq;
    const base = `/sessions/${encodeURIComponent(sessionId)}/files`;
    let paths = [];
    try {
      if (m[2]) paths = [...new Set((await api('GET', `${base}?q=${encodeURIComponent(m[2])}`)).hits.map((h) => h.path))];
      else paths = (await api('GET', base)).entries.filter((e) => e.kind === 'file').map((e) => e.path);
    } catch { paths = []; }
    if (seq !== pickSeq) return; // a later keystroke asked again
    picker.replaceChildren(...paths.slice(0, 8).map((p, i) => el('li', { role: 'option', id: `pick-${i}`, 'aria-selected': String(i === 0), onmousedown: (e) => { e.preventDefault(); choose(p); } }, p)));
    picker.hidden = !paths.length;
    if (paths.length) input.setAttribute('aria-activedescendant', 'pick-0');
  };
  input.addEventListener('input', openPicker);
  input.addEventListener('blur', () => setTimeout(closePicker, 150));
  const form = el('form', { class: 'composer' }, el('div', { class: 'opts' }, agent, model, saved), el('div', { class: 'grow' }, picker, thumbs, input), attachInput, attachLabel, send, stop);
  input.addEventListener('paste', (e) => { if (e.clipboardData?.files?.length) { e.preventDefault(); addImages(e.clipboardData.files); } });
  const filesLink = el('a', { href: sessionId ? `/chat/${encodeURIComponent(sessionId)}/files` : '#', hidden: !sessionId }, 'Files');
  const head = el('div', { class: 'conv-head' }, el('a', { href: '/', class: 'back' }, '← Sessions'), filesLink,
    el('span', { class: 'hint' }, 'Type @ to pick a workspace file (or write <file>path</file>)'));
  const conv = el('section', { class: 'conversation', 'aria-label': 'Conversation' }, head, box, error, form);
  const ref = new URLSearchParams(location.search).get('file');
  if (ref) input.value = `<file>${ref}</file> `;
  main.replaceChildren(sidebar, conv);
  main.classList.toggle('chat-open', !!sessionId);
  let sessions = [];
  let active = null;
  // Runs of the open session this page has shown (or loaded as history), and
  // whether that first load is done: only later runs are picked up from the feed.
  const known = new Set(); let ready = false;

  const draw = () => {
    const q = search.value.toLowerCase();
    list.replaceChildren(...sessions.filter((s) => !q || (s.title || s.id).toLowerCase().includes(q)).map((s) => {
      const st = status.get(s.id) || '';
      return el('li', {}, el('a', { href: `/chat/${s.id}`, 'aria-current': s.id === sessionId ? 'true' : null, 'data-session': s.id, 'data-status': st },
        el('span', { class: `dot ${st} ${unread.has(s.id) ? 'unread' : ''}`, 'aria-hidden': 'true' }),
        el('span', { class: 'title' }, s.title || s.id), el('span', { class: 'visually-hidden' }, st ? ` (${st.replace('_', ' ')})` : '')));
    }));
  };
  const childSessions = new Set();
  const loadSessions = async () => {
    const page = await api('GET', '/sessions?limit=100');
    // A child run's session belongs to its parent's run page, not the chat list.
    for (const x of page.data) if (x.metadata?.parent_run_id) childSessions.add(x.id);
    sessions = page.data.filter((x) => !childSessions.has(x.id));
    draw();
  };
  search.addEventListener('input', draw);
  onFeed((d) => {
    if (d.type === 'session.titled') {
      const s = sessions.find((x) => x.id === d.session_id);
      if (s) { s.title = d.data.title; draw(); }
      return;
    }
    const map = { 'run.created': 'running', 'run.started': 'running', 'run.resumed': 'running', 'approval.requested': 'waiting_approval', 'approval.resolved': 'running', 'run.completed': 'completed', 'run.failed': 'failed', 'run.cancelled': 'cancelled', 'children.waiting': 'waiting_children', 'children.done': 'running' };
    status.set(d.session_id, map[d.type]);
    if (d.session_id !== sessionId && ['run.completed', 'run.failed'].includes(d.type)) unread.add(d.session_id);
    // A run started elsewhere (API, CLI, another tab) in the open session shows here live;
    // the feed may repeat runs from just before the page loaded: those are known already.
    if (ready && d.session_id === sessionId && d.type === 'run.created' && !active && !known.has(d.run_id)) {
      box.querySelector('.empty')?.remove(); attach(d.run_id);
    }
    // Child runs (their run.created carries a ceiling) live in sessions of their own, not listed here.
    if (d.type === 'run.created' && d.data?.ceiling) childSessions.add(d.session_id);
    if (childSessions.has(d.session_id)) return;
    if (!sessions.some((s) => s.id === d.session_id)) loadSessions(); else draw();
  });

  const attach = (runId) => {
    known.add(runId);
    if (active?.runId === runId) return; // the feed saw it first
    active?.close();
    stop.hidden = false;
    const retry = (text) => { input.value = text; form.requestSubmit(); };
    active = followRun(runId, box, () => { stop.hidden = true; active = null; loadSessions(); }, retry);
    active.runId = runId;
  };
  const stopRun = async () => { if (active?.runId) { try { await api('POST', `/runs/${encodeURIComponent(active.runId)}/cancel`, {}); } catch (e) { error.textContent = e.message; } } };
  stop.addEventListener('click', stopRun);
  input.addEventListener('keydown', (e) => {
    if (!picker.hidden) {
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') { e.preventDefault(); moveSelection(e.key === 'ArrowDown' ? 1 : -1); return; }
      if (e.key === 'Enter' || e.key === 'Tab') { e.preventDefault(); choose(picker.querySelector('[aria-selected=true]')?.textContent || ''); return; }
      if (e.key === 'Escape') { e.preventDefault(); closePicker(); return; }
    }
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
    if (e.key === 'Escape') stopRun();
  });
  input.addEventListener('input', () => { input.style.height = 'auto'; input.style.height = Math.min(input.scrollHeight, 200) + 'px'; });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = input.value;
    if (!text.trim()) return;
    error.textContent = '';
    send.disabled = true;
    try {
      const body = { input: text, agent: agent.value || undefined, model: model.value || undefined, images: images.length ? images : undefined };
      if (sessionId) body.session_id = sessionId;
      const run = await api('POST', '/runs', body);
      input.value = '';
      box.querySelector('.empty')?.remove();
      images = []; thumbs.replaceChildren();
      if (!sessionId) {
        sessionId = run.session_id;
        history.pushState({}, '', `/chat/${sessionId}`);
        filesLink.href = `/chat/${encodeURIComponent(sessionId)}/files`;
        filesLink.hidden = false;
        main.classList.add('chat-open');
        loadSessions();
      }
      attach(run.id);
    } catch (err) { error.textContent = err.message; } finally { send.disabled = false; input.focus(); }
  });

  // Pickers, sessions, and the open session (its finished runs from the
  // session's messages, a run still going from its journal, live).
  const wanted = new URLSearchParams(location.search).get('agent');
  api('GET', '/agents').then((p) => {
    agent.replaceChildren(...p.data.map((a) => el('option', { value: a.name, selected: a.name === wanted }, a.name)));
  }).catch(() => {});
  api('GET', '/model-profiles').then((p) => model.append(...p.data.filter((m) => !m.shadowed).map((m) => el('option', { value: m.name }, m.name)))).catch(() => {});
  await loadSessions();
  if (!sessionId) { ready = true; box.append(el('p', { class: 'empty' }, 'Start a conversation below.')); input.focus(); return; }
  const [view, runs] = await Promise.all([api('GET', `/sessions/${encodeURIComponent(sessionId)}`), api('GET', `/sessions/${encodeURIComponent(sessionId)}/runs?limit=100`)]);
  const going = runs.data.find((r) => ['queued', 'running', 'waiting_approval'].includes(r.status));
  for (const r of runs.data) known.add(r.id);
  ready = true;
  // Session messages carry the message's fields flat, with their run and index.
  const results = new Map();
  for (const msg of view.messages) {
    if (going && msg.run_id === going.id) continue;
    if (msg.role === 'user') {
      const pics = (msg.content || []).filter((p) => p.type === 'image' && p.url.startsWith('data:image/'));
      box.append(userMsg(textOf(msg), pics.map((p) => p.url)));
    } else if (msg.role === 'assistant') {
      const text = textOf(msg);
      if (text || msg.thinking) {
        const b = el('div', { class: 'body', 'data-final': '1' }); b.innerHTML = md(text);
        box.append(el('article', { class: 'msg assistant' }, el('div', { class: 'who' }, 'assistant'), msg.thinking ? thoughts(msg.thinking) : null, b));
      }
      for (const c of msg.tool_calls || []) {
        const result = el('pre', { class: 'result' }, '');
        results.set(c.id, result);
        box.append(el('div', { class: 'msg' }, el('details', { class: 'tool', 'data-call': c.id }, el('summary', {}, `${c.name}(${summary(c.arguments)})`),
          el('div', {}, el('strong', {}, 'Arguments'), el('pre', {}, JSON.stringify(c.arguments, null, 2))),
          el('div', {}, el('strong', {}, 'Result'), result))));
      }
    } else if (msg.role === 'tool' && results.has(msg.tool_call_id)) results.get(msg.tool_call_id).textContent = textOf(msg);
  }
  if (going) attach(going.id);
  box.scrollTop = box.scrollHeight;
  input.focus();
}

// ---- runs ------------------------------------------------------------------

async function runs() {
  const status = el('select', { 'aria-label': 'Status' }, ['', 'queued', 'running', 'waiting_approval', 'waiting_children', 'completed', 'failed', 'cancelled'].map((s) => el('option', { value: s }, s || 'any status')));
  const session = el('input', { type: 'text', placeholder: 'session id', 'aria-label': 'Session id' });
  const agentF = el('input', { type: 'text', placeholder: 'agent', 'aria-label': 'Agent' });
  const modelF = el('input', { type: 'text', placeholder: 'model', 'aria-label': 'Model' });
  const fromF = el('input', { type: 'date', 'aria-label': 'From' });
  const toF = el('input', { type: 'date', 'aria-label': 'To' });
  const body = el('tbody');
  const more = el('button', { type: 'button', class: 'ghost', hidden: true }, 'Load more');
  let cursor = null;
  const load = async (reset) => {
    if (reset) { body.replaceChildren(); cursor = null; }
    const q = new URLSearchParams({ limit: '50' });
    if (status.value) q.set('status', status.value);
    if (session.value.trim()) q.set('session_id', session.value.trim());
    if (agentF.value.trim()) q.set('agent', agentF.value.trim());
    if (modelF.value.trim()) q.set('model', modelF.value.trim());
    if (fromF.value) q.set('from', fromF.value);
    if (toF.value) q.set('to', toF.value);
    if (cursor) q.set('after', cursor);
    const page = await api('GET', `/runs?${q}`);
    for (const r of page.data) {
      body.append(el('tr', {}, el('td', {}, el('a', { href: `/runs/${r.id}`, class: 'mono' }, r.id)), el('td', {}, r.status), el('td', {}, r.agent || ''),
        el('td', {}, r.model), el('td', { class: 'mono' }, el('a', { href: `/chat/${r.session_id}` }, r.session_id)), el('td', {}, String(r.usage?.total_tokens ?? '')), el('td', {}, rel(r.created_at))));
    }
    cursor = page.next_cursor; more.hidden = !cursor;
    if (!body.children.length) body.append(el('tr', {}, el('td', { colspan: 7, class: 'empty' }, 'No runs yet: start one in Chat.')));
  };
  status.addEventListener('change', () => load(true));
  for (const f of [session, agentF, modelF, fromF, toF]) f.addEventListener('change', () => load(true));
  more.addEventListener('click', () => load(false));
  main.replaceChildren(el('section', { class: 'page' }, el('h1', {}, 'Runs'),
    el('div', { class: 'filters' }, el('label', {}, 'Status', status), el('label', {}, 'Session', session), el('label', {}, 'Agent', agentF),
      el('label', {}, 'Model', modelF), el('label', {}, 'From', fromF), el('label', {}, 'To', toF)),
    el('table', {}, el('thead', {}, el('tr', {}, ['Run', 'Status', 'Agent', 'Model', 'Session', 'Tokens', 'Created'].map((h) => el('th', { scope: 'col' }, h)))), body), more));
  await load(true);
}

/** A run's descendants as nested lists (status, agent, tokens), and every id in the tree. */
async function runTree(id, ids, depth = 0) {
  const kids = (await api('GET', `/runs/${encodeURIComponent(id)}/children`)).data;
  if (!kids.length || ids.size > 500) return null;
  const items = [];
  for (const k of kids) {
    ids.add(k.id);
    const sub = depth < 8 ? await runTree(k.id, ids, depth + 1) : null;
    items.push(el('li', {}, el('a', { href: `/runs/${k.id}`, class: 'mono' }, k.id), ' ',
      el('span', { class: `dot ${k.status}`, 'aria-hidden': 'true' }), ` ${k.status}`, ` · ${k.agent} · ${k.tree_usage?.total_tokens ?? 0} tokens`,
      k.output ? el('details', {}, el('summary', {}, 'answer'), el('pre', {}, k.output)) : null, sub));
  }
  return el('ul', { class: 'tree' }, items);
}

async function runPage(id) {
  const section = el('section', { class: 'page' });
  const tree = new Set([id]);
  const inspector = el('aside', { class: 'inspector', 'aria-label': 'What the model saw', hidden: true });
  main.replaceChildren(section, inspector);
  const draw = async () => {
    const [run, events] = await Promise.all([api('GET', `/runs/${encodeURIComponent(id)}`), api('GET', `/runs/${encodeURIComponent(id)}/events?limit=1000`)]);
    const evs = events.data;
    const t0 = evs.length ? Date.parse(evs[0].created_at) : 0;
    const tEnd = evs.length ? Date.parse(evs[evs.length - 1].created_at) : 0;
    const span = Math.max(1, tEnd - t0);
    const open = new Map();
    const rows = evs.map((e) => {
      const t = Date.parse(e.created_at) - t0;
      let startT = t; let cls = '';
      if (e.type === 'step.started') open.set('step', t);
      if (e.type === 'tool.started' || e.type === 'tool.called') open.set(e.data.call_id, t);
      if (e.type === 'llm.completed') { startT = open.get('step') ?? t; cls = 'llm'; }
      if (e.type === 'tool.result') { startT = open.get(e.data.call_id) ?? t; cls = 'tool'; }
      if (e.type === 'approval.resolved') cls = 'wait';
      const left = (startT / span) * 100; const width = Math.max(0.5, ((t - startT) / span) * 100);
      let what = '';
      if (e.type === 'llm.completed') what = `${e.data.provider}/${e.data.model} · ${e.data.usage?.input_tokens ?? 0}→${e.data.usage?.output_tokens ?? 0} tokens${e.data.cost_usd ? ` · $${e.data.cost_usd.toFixed(6)}` : ''}`;
      else if (e.type === 'tool.called') what = `${e.data.name}(${summary(e.data.arguments)})`;
      else if (e.type === 'tool.result') what = `${e.data.name}: ${e.data.status} · ${e.data.duration_ms} ms`;
      else if (e.type === 'run.failed') what = e.data.error?.message || '';
      const saw = e.type === 'llm.completed' ? el('button', { type: 'button', class: 'ghost', onclick: () => showContext(id, e.data.step, inspector) }, 'What the model saw') : null;
      return el('tr', {}, el('td', { class: 'mono' }, String(e.seq)), el('td', { class: 'mono' }, e.type), el('td', {}, `${t} ms`),
        el('td', { style: 'width:40%' }, el('div', { class: `bar ${cls}`, style: `margin-left:${left}%;width:${width}%`, title: `${t - startT} ms` })),
        el('td', {}, el('details', {}, el('summary', {}, what || 'details'), el('pre', {}, JSON.stringify(e.data, null, 2))), saw));
    });
    const llm = evs.filter((e) => e.type === 'llm.completed').length;
    const toolCalls = evs.filter((e) => e.type === 'tool.called').length;
    const blob = URL.createObjectURL(new Blob([JSON.stringify({ run, events: evs }, null, 2)], { type: 'application/json' }));
    const children = await runTree(id, tree);
    const family = (run.parent_run_id || children) ? el('div', { class: 'family' }, el('h2', {}, 'Run tree'),
      run.parent_run_id ? el('p', {}, 'Delegated by ', el('a', { href: `/runs/${run.parent_run_id}`, class: 'mono' }, run.parent_run_id),
        ` (depth ${run.depth}; root `, el('a', { href: `/runs/${run.root_run_id}`, class: 'mono' }, run.root_run_id), ')') : null,
      children) : null;
    section.replaceChildren(el('h1', {}, 'Run ', copyable(run.id)),
      el('div', { class: 'totals' }, el('div', {}, `status: ${run.status}`), el('div', {}, `wall: ${span} ms`), el('div', {}, `tokens: ${run.usage?.total_tokens ?? 0}`),
        el('div', {}, `cost: ${run.cost_usd != null ? '$' + run.cost_usd.toFixed(6) : 'n/a'}`), el('div', {}, `LLM calls: ${llm}`), el('div', {}, `tool calls: ${toolCalls}`),
        run.tree_usage && run.tree_usage.total_tokens !== run.usage?.total_tokens ? el('div', {}, `with its children: ${run.tree_usage.total_tokens} tokens`) : null,
        run.agent_version ? el('div', {}, `agent ${run.agent} v${run.agent_version}`) : null,
        el('div', {}, 'session ', el('a', { href: `/chat/${run.session_id}`, class: 'mono' }, run.session_id))),
      family,
      el('table', {}, el('thead', {}, el('tr', {}, ['#', 'Event', 'At', 'Timeline', 'Details'].map((h) => el('th', { scope: 'col' }, h)))), el('tbody', {}, rows)),
      run.output ? el('div', {}, el('h2', {}, 'Answer'), (() => { const d = el('div', { class: 'msg assistant' }); d.innerHTML = md(run.output); return d; })()) : null,
      el('p', {}, el('a', { href: blob, download: `${run.id}.json` }, 'Download the journal (JSON)')));
    return ['completed', 'failed', 'cancelled'].includes(run.status);
  };
  const done = await draw();
  if (!done) onFeed((d) => { if (tree.has(d.run_id) || d.type === 'run.created') draw(); });
}

/** The request of one step: tokens per part as a stacked bar, then the exact messages and tools. */
async function showContext(runId, step, box) {
  box.hidden = false;
  box.replaceChildren(el('p', {}, 'Loading…'));
  try {
    const c = await api('GET', `/runs/${encodeURIComponent(runId)}/context?step=${step}`);
    const parts = [['system_prompt', 'system prompt', 'var(--accent)'], ['skills', 'skills', 'var(--wait)'], ['history', 'history', 'var(--ok)'], ['summary', 'summary', 'var(--off)'], ['tools', 'tools', 'var(--bad)']];
    const sum = Math.max(1, parts.reduce((n, [k]) => n + c.tokens[k], 0));
    box.replaceChildren(el('div', {},
      el('h2', {}, `Step ${c.step}: what the model saw`),
      el('p', { class: 'hint' }, `${c.profile || c.model} (${c.provider || 'provider'} ${c.model}) · ${c.tokens.total} tokens${c.max_tokens ? ` · max_tokens ${c.max_tokens}` : ''}`),
      el('div', { class: 'stack', role: 'img', 'aria-label': parts.map(([k, n]) => `${n} ${c.tokens[k]}`).join(', ') },
        parts.filter(([k]) => c.tokens[k] > 0).map(([k, n, col]) => el('span', { style: `width:${(c.tokens[k] / sum) * 100}%;background:${col}`, title: `${n}: ${c.tokens[k]} tokens` }))),
      el('ul', { class: 'legend' }, parts.map(([k, n]) => el('li', {}, `${n}: ${c.tokens[k]}`))),
      el('h3', {}, 'Messages'),
      c.messages.map((m) => el('details', { class: 'tool' }, el('summary', {}, `${m.role}${m.tool_calls?.length ? ' → ' + m.tool_calls.map((t) => t.name).join(', ') : ''}: ${summary(textOf(m) || '')}`),
        el('pre', {}, textOf(m) || JSON.stringify(m.tool_calls || m, null, 2)))),
      el('h3', {}, 'Tools'), el('pre', {}, JSON.stringify(c.tools, null, 2)),
      el('h3', {}, 'Parameters'), el('pre', {}, JSON.stringify(c.params, null, 2)),
      c.notes.map((n) => el('p', { class: 'hint' }, n))));
  } catch (e) { box.replaceChildren(el('p', { class: 'error', role: 'alert' }, e.message)); }
}

// ---- approvals -------------------------------------------------------------

async function approvals() {
  const list = el('div', {});
  const load = async () => {
    const page = await api('GET', '/approvals?status=pending&limit=100');
    list.replaceChildren(...page.data.map((a) => el('div', {}, el('div', { class: 'hint' }, 'run ', el('a', { href: `/runs/${a.run_id}`, class: 'mono' }, a.run_id), ' · ', rel(a.created_at)),
      approvalCard({ approval_id: a.id, tool: a.tool, risk: a.risk, reasons: a.reasons, arguments_sanitized: a.arguments_sanitized }))));
    if (!page.data.length) list.append(el('p', { class: 'empty' }, 'Nothing is waiting for you.'));
  };
  main.replaceChildren(el('section', { class: 'page' }, el('h1', {}, 'Approvals'), list));
  onFeed((d) => { if (d.type.startsWith('approval.')) load(); });
  await load();
}

// ---- workspace (a session's files) ------------------------------------------

async function files(sid) {
  const base = `/sessions/${encodeURIComponent(sid)}/files`;
  let dir = new URLSearchParams(location.search).get('path') || '.';
  const crumbs = el('nav', { 'aria-label': 'Folder', class: 'hint' });
  const body = el('tbody');
  const preview = el('section', { class: 'preview', 'aria-label': 'Preview' });
  const status = el('div', { role: 'status', class: 'hint' });
  const picker = el('input', { type: 'file', multiple: true, id: 'upload', 'aria-label': 'Upload files' });
  const search = el('input', { type: 'search', placeholder: 'Search names and text', 'aria-label': 'Search files' });
  const hits = el('ul', { class: 'hits' });
  const url = (p) => `/v1${base}/${p.split('/').map(encodeURIComponent).join('/')}`;

  const upload = (list) => Promise.all([...list].map((file) => new Promise((resolve) => {
    const path = dir === '.' ? file.name : `${dir}/${file.name}`;
    const row = el('div', {}, `${path}: `, el('progress', { max: 100, value: 0, 'aria-label': `Uploading ${path}` }));
    status.append(row);
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url(path));
    xhr.setRequestHeader('x-csrf-token', csrf);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) row.querySelector('progress').value = (e.loaded / e.total) * 100; };
    xhr.onload = () => { row.replaceChildren(`${path}: ${xhr.status === 201 ? 'uploaded' : 'failed (' + xhr.status + ')'}`); resolve(); };
    xhr.onerror = () => { row.replaceChildren(`${path}: failed`); resolve(); };
    xhr.send(file);
  }))).then(load);
  picker.addEventListener('change', () => upload(picker.files));

  const show = async (e) => {
    preview.replaceChildren(el('h2', {}, e.path));
    const resp = await fetch(url(e.path), { credentials: 'same-origin' });
    const type = resp.headers.get('content-type') || '';
    if (type.startsWith('image/')) {
      preview.append(el('img', { src: URL.createObjectURL(await resp.blob()), alt: e.path, style: 'max-width:100%' }));
    } else {
      const text = await resp.text();
      const code = el('code', { 'data-lang': e.path.split('.').pop() }, text.length > 200000 ? text.slice(0, 200000) + '\n…' : text);
      preview.append(el('pre', {}, code));
    }
  };
  const act = async (f) => { try { await f(); await load(); } catch (err) { status.textContent = err.message; } };
  const load = async () => {
    const q = new URLSearchParams({ path: dir });
    const listing = await api('GET', `${base}?${q}`);
    const parts = dir === '.' ? [] : dir.split('/');
    crumbs.replaceChildren(el('a', { href: '#', onclick: (ev) => { ev.preventDefault(); dir = '.'; load(); } }, 'workspace'),
      ...parts.map((p, i) => [' / ', el('a', { href: '#', onclick: (ev) => { ev.preventDefault(); dir = parts.slice(0, i + 1).join('/'); load(); } }, p)]));
    body.replaceChildren(...listing.entries.map((e) => el('tr', {},
      el('td', {}, e.kind === 'dir'
        ? el('a', { href: '#', onclick: (ev) => { ev.preventDefault(); dir = e.path; load(); } }, `${e.name}/`)
        : el('a', { href: '#', onclick: (ev) => { ev.preventDefault(); show(e); } }, e.name)),
      el('td', {}, e.kind === 'dir' ? '' : `${e.size} B`),
      el('td', {},
        e.kind === 'file' ? el('a', { href: `${url(e.path)}?download=1`, 'aria-label': `Download ${e.name}` }, 'download') : null, ' ',
        e.kind === 'file' ? el('a', { href: `/chat/${encodeURIComponent(sid)}?file=${encodeURIComponent(e.path)}`, 'aria-label': `Use in chat: ${e.name}` }, 'use in chat') : null, ' ',
        el('button', { type: 'button', class: 'ghost', 'aria-label': `Rename ${e.name}`, onclick: () => { const to = prompt('Rename to', e.path); if (to && to !== e.path) act(() => api('POST', `/sessions/${encodeURIComponent(sid)}/rename-file`, { from: e.path, to })); } }, 'rename'), ' ',
        el('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${e.name}`, onclick: () => { if (confirm(`Delete ${e.path}?`)) act(() => api('DELETE', `${base}/${e.path.split('/').map(encodeURIComponent).join('/')}`)); } }, 'delete')))));
    if (!listing.entries.length) body.append(el('tr', {}, el('td', { colspan: 3, class: 'empty' }, 'Empty: upload files or drop them here.')));
  };
  search.addEventListener('change', async () => {
    if (!search.value.trim()) { hits.replaceChildren(); return; }
    const r = await api('GET', `${base}?${new URLSearchParams({ q: search.value.trim() })}`);
    hits.replaceChildren(...r.hits.map((h) => el('li', {}, el('a', { href: '#', onclick: (ev) => { ev.preventDefault(); show({ path: h.path }); } }, h.path), h.line ? ` :${h.line} ${h.text}` : '')));
    if (!r.hits.length) hits.append(el('li', { class: 'hint' }, 'No match.'));
  });
  const page = el('section', { class: 'page drop' },
    el('h1', {}, 'Files of ', el('a', { href: `/chat/${encodeURIComponent(sid)}`, class: 'mono' }, sid)),
    el('div', { class: 'filters' }, el('label', {}, 'Upload', picker), el('label', {}, 'Search', search)), hits, crumbs, status,
    el('table', {}, el('thead', {}, el('tr', {}, ['Name', 'Size', 'Actions'].map((h) => el('th', { scope: 'col' }, h)))), body), preview);
  page.addEventListener('dragover', (e) => { e.preventDefault(); page.classList.add('over'); });
  page.addEventListener('dragleave', () => page.classList.remove('over'));
  page.addEventListener('drop', (e) => { e.preventDefault(); page.classList.remove('over'); upload(e.dataTransfer.files); });
  main.replaceChildren(page);
  await load();
}

// ---- manage ------------------------------------------------------------------

/** A table of rows; `cols` are [header, row => cell]. */
function table(cols, rows, empty) {
  const body = rows.length ? rows.map((r) => el('tr', {}, cols.map(([, f]) => el('td', {}, f(r)))))
    : [el('tr', {}, el('td', { colspan: cols.length, class: 'empty' }, empty))];
  return el('table', {}, el('thead', {}, el('tr', {}, cols.map(([h]) => el('th', { scope: 'col' }, h)))), el('tbody', {}, body));
}

/** A form for a tool's arguments, generated from its JSON Schema's top-level properties. */
function schemaForm(tool, onResult) {
  const props = tool.input_schema?.properties || {};
  const required = new Set(tool.input_schema?.required || []);
  const fields = Object.entries(props).map(([name, sch]) => {
    const id = `arg-${tool.name}-${name}`;
    const type = Array.isArray(sch.type) ? sch.type[0] : sch.type;
    const input = type === 'boolean' ? el('input', { id, type: 'checkbox' })
      : ['number', 'integer'].includes(type) ? el('input', { id, type: 'number', step: type === 'integer' ? '1' : 'any' })
      : ['object', 'array'].includes(type) ? el('textarea', { id, rows: 3, placeholder: 'JSON' })
      : el('input', { id, type: 'text' });
    return { name, type, input, label: el('label', { for: id }, `${name}${required.has(name) ? ' *' : ''}${sch.description ? ' — ' + sch.description : ''}`) };
  });
  // A schema without named properties takes its arguments as one JSON object.
  const whole = fields.length ? null : el('textarea', { id: `args-${tool.name}`, rows: 3, placeholder: '{}' });
  const out = el('pre', { 'aria-live': 'polite' });
  const form = el('form', { class: 'toolform' }, fields.map((f) => el('div', {}, f.label, f.input)),
    whole ? el('div', {}, el('label', { for: whole.id }, 'Arguments (JSON object)'), whole) : null,
    el('button', { type: 'submit' }, `Call ${tool.name}`), out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    let args = {};
    try {
      if (whole && whole.value.trim()) args = JSON.parse(whole.value);
      for (const f of fields) {
        const v = f.type === 'boolean' ? f.input.checked : f.input.value;
        if (v === '' && !required.has(f.name)) continue;
        args[f.name] = ['number', 'integer'].includes(f.type) ? Number(v) : ['object', 'array'].includes(f.type) ? JSON.parse(v) : v;
      }
      const r = await api('POST', `/tools/${encodeURIComponent(tool.name)}/call`, { arguments: args });
      out.textContent = (r.content || []).map((p) => (p.type === 'text' ? p.text : `[${p.type}]`)).join('\n') + (r.is_error ? '\n(error)' : '');
      onResult?.(r);
    } catch (err) { out.textContent = err.message; }
  });
  return form;
}

/** The text files of a .zip, as [path, text] pairs: read from its central
 *  directory; stored or deflated entries (the browser's DecompressionStream
 *  inflates), at most 4 MiB unpacked in all, the API's own limit. */
async function unzip(file) {
  const buf = new Uint8Array(await file.arrayBuffer());
  const dv = new DataView(buf.buffer);
  let end = buf.length - 22;
  while (end >= 0 && dv.getUint32(end, true) !== 0x06054b50) end--;
  if (end < 0) throw new Error('This is not a zip file.');
  const count = dv.getUint16(end + 10, true);
  let at = dv.getUint32(end + 16, true);
  const out = []; let total = 0;
  for (let i = 0; i < count; i++) {
    if (dv.getUint32(at, true) !== 0x02014b50) throw new Error('The zip file is damaged.');
    const method = dv.getUint16(at + 10, true); const size = dv.getUint32(at + 20, true); const unpacked = dv.getUint32(at + 24, true);
    const nameLen = dv.getUint16(at + 28, true); const extraLen = dv.getUint16(at + 30, true); const commentLen = dv.getUint16(at + 32, true);
    const local = dv.getUint32(at + 42, true);
    const name = new TextDecoder().decode(buf.subarray(at + 46, at + 46 + nameLen));
    at += 46 + nameLen + extraLen + commentLen;
    if (name.endsWith('/')) continue;
    total += unpacked;
    if (total > 4 << 20) throw new Error('The zip unpacks to more than 4 MiB.');
    const start = local + 30 + dv.getUint16(local + 26, true) + dv.getUint16(local + 28, true);
    const raw = buf.subarray(start, start + size);
    let data;
    if (method === 0) data = raw;
    else if (method === 8) data = new Uint8Array(await new Response(new Blob([raw]).stream().pipeThrough(new DecompressionStream('deflate-raw'))).arrayBuffer());
    else throw new Error(`${name}: unsupported compression`);
    out.push([name, new TextDecoder().decode(data)]);
  }
  return out;
}

async function manage() {
  const sections = [
    ['agents', 'Agents'], ['teams', 'Teams'], ['tools', 'Tools'], ['mcp', 'MCP servers'], ['skills', 'Skills'], ['templates', 'Templates'],
    ['prompts', 'Saved prompts'], ['models', 'Providers and models'], ['keys', 'API keys'], ['usage', 'Usage'],
  ];
  const which = location.hash.slice(1) || 'agents';
  const body = el('div', {});
  const msg = el('div', { role: 'status', class: 'hint' });
  main.replaceChildren(el('section', { class: 'page' }, el('h1', {}, 'Manage'),
    el('nav', { class: 'filters', 'aria-label': 'Sections' }, sections.map(([id, name]) => el('a', { href: `#${id}`, 'aria-current': id === which ? 'page' : null }, name))), msg, body));
  addEventListener('hashchange', () => location.reload());
  const act = async (f) => { try { await f(); location.reload(); } catch (e) { msg.textContent = e.message; } };
  const del = (path, what) => el('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${what}`, onclick: () => confirm(`Delete ${what}?`) && act(() => api('DELETE', path)) }, 'delete');
  try {
    if (which === 'agents') {
      const p = await api('GET', '/agents');
      // One form creates an agent or, after "edit", replaces its whole definition (JSON).
      const name = el('input', { id: 'agent-name', required: true }); const prompt = el('textarea', { id: 'agent-prompt', rows: 3 });
      const extra = el('textarea', { id: 'agent-json', rows: 4, placeholder: '{"model": "fast", "tools": ["echo"], "max_steps": 5}' });
      const submit = el('button', { type: 'submit' }, 'Create agent');
      let editing = null;
      const form = el('form', { class: 'filters' }, el('label', { for: 'agent-name' }, 'Name', name), el('label', { for: 'agent-prompt' }, 'System prompt', prompt),
        el('label', { for: 'agent-json' }, 'Other settings (JSON)', extra), submit);
      const startEdit = (a) => {
        editing = a.name; name.value = a.name; name.readOnly = true; prompt.value = a.system_prompt || '';
        const { name: _n, system_prompt: _p, source: _s, ...rest } = a;
        extra.value = Object.keys(rest).length ? JSON.stringify(rest, null, 2) : '';
        submit.textContent = 'Save agent'; name.scrollIntoView(); prompt.focus();
      };
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        let more = {};
        try { more = extra.value.trim() ? JSON.parse(extra.value) : {}; } catch { msg.textContent = 'The other settings are not valid JSON.'; return; }
        const def = { ...more, name: name.value, system_prompt: prompt.value || undefined };
        act(() => (editing ? api('PUT', `/agents/${encodeURIComponent(editing)}`, def) : api('POST', '/agents', def)));
      });
      const tryIt = (a) => el('a', { href: `/chat?agent=${encodeURIComponent(a.name)}`, 'aria-label': `Try ${a.name} in a chat` }, 'try');
      const editIt = (a) => el('button', { type: 'button', class: 'ghost', 'aria-label': `Edit ${a.name}`, onclick: () => startEdit(a) }, 'edit');
      // Versions load when opened; export is a download of the portable file.
      const versions = (a) => {
        const d = el('details', {}, el('summary', {}, 'versions'));
        d.addEventListener('toggle', async () => {
          if (!d.open || d.dataset.loaded) return;
          d.dataset.loaded = '1';
          const v = await api('GET', `/agents/${encodeURIComponent(a.name)}/versions`);
          d.append(el('ol', {}, v.data.map((x) => el('li', {}, `v${x.version} · ${x.created_at}`, el('pre', {}, JSON.stringify(x.doc, null, 2))))));
        });
        return d;
      };
      const exportIt = (a) => el('a', { href: `/v1/agents/${encodeURIComponent(a.name)}/export`, download: `${a.name}.agent.json` }, 'export');
      const file = el('input', { id: 'agent-import', type: 'file', accept: '.json,application/json' });
      const replace = el('input', { id: 'agent-replace', type: 'checkbox' });
      const importForm = el('form', { class: 'filters' }, el('label', { for: 'agent-import' }, 'Exported agent file', file),
        el('label', { for: 'agent-replace' }, replace, ' replace what exists (a new version)'), el('button', { type: 'submit' }, 'Import'));
      importForm.addEventListener('submit', async (e) => {
        e.preventDefault();
        if (!file.files[0]) { msg.textContent = 'Choose a file first.'; return; }
        let bundle;
        try { bundle = JSON.parse(await file.files[0].text()); } catch { msg.textContent = 'The file is not JSON.'; return; }
        act(() => api('POST', `/agents/import${replace.checked ? '?replace=true' : ''}`, bundle));
      });
      body.append(table([['Name', (a) => a.name], ['Model', (a) => a.model || 'default'], ['Source', (a) => a.source],
        ['', (a) => [tryIt(a), ' ', a.source === 'tenant' ? [editIt(a), ' ', exportIt(a), ' ', versions(a), ' ', del(`/agents/${encodeURIComponent(a.name)}`, a.name)] : '']]], p.data, 'No agents.'),
        el('h2', {}, 'New agent'), form, el('h2', {}, 'Import an agent'), importForm);
    } else if (which === 'teams') {
      const p = await api('GET', '/teams');
      const board = (t) => {
        const d = el('details', {}, el('summary', {}, 'blackboard'));
        d.addEventListener('toggle', async () => {
          if (!d.open) return;
          const b = await api('GET', `/teams/${encodeURIComponent(t.name)}/blackboard`);
          d.replaceChildren(d.firstChild, el('ol', { class: 'board' }, b.data.map((e) => el('li', {}, el('strong', {}, `[${e.kind}] ${e.author}: `), e.content,
            e.run_id ? [' ', el('a', { href: `/runs/${e.run_id}`, class: 'mono' }, 'run')] : null))));
        });
        return d;
      };
      const runIt = (t) => {
        const input = el('input', { 'aria-label': `Task for ${t.name}`, placeholder: 'task' });
        const go = el('button', { type: 'button', onclick: async () => {
          try { const r = await api('POST', `/teams/${encodeURIComponent(t.name)}/runs`, { input: input.value }); location.href = `/runs/${r.id}`; } catch (e) { msg.textContent = e.message; }
        } }, 'Run');
        return el('span', {}, input, ' ', go);
      };
      const def = el('textarea', { id: 'team-json', rows: 6, placeholder: '{"name": "crew", "strategy": "serial", "members": [{"agent": "default", "role": "researcher"}], "lead": {"agent": "default", "role": "lead"}}' });
      const form = el('form', { class: 'filters' }, el('label', { for: 'team-json' }, 'Team (JSON)', def), el('button', { type: 'submit' }, 'Create team'));
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        let t;
        try { t = JSON.parse(def.value); } catch { msg.textContent = 'The team is not valid JSON.'; return; }
        act(() => api('POST', '/teams', t));
      });
      body.append(table([['Name', (t) => t.name], ['Strategy', (t) => t.strategy || 'serial'],
        ['Members', (t) => [...(t.members || []).map((m) => `${m.role} (${m.agent})`), `lead: ${t.lead.role} (${t.lead.agent})`].join(', ')],
        ['', (t) => [runIt(t), ' ', board(t), ' ', del(`/teams/${encodeURIComponent(t.name)}`, t.name)]]], p.data, 'No teams.'), el('h2', {}, 'New team'), form);
    } else if (which === 'tools') {
      const p = await api('GET', '/tools');
      body.append(table([['Name', (t) => el('details', { 'data-tool': t.name }, el('summary', { class: 'mono' }, t.name), el('pre', {}, JSON.stringify(t.input_schema, null, 2)), schemaForm(t))], ['Source', (t) => t.source], ['Description', (t) => t.description]], p.data, 'No tools.'));
    } else if (which === 'mcp') {
      const p = await api('GET', '/mcp-servers');
      // State with its history (oldest first, as the API keeps it).
      const state = (m) => el('details', { class: 'mcp-state' }, el('summary', {}, `${m.state}${m.error ? ': ' + m.error : ''}`),
        el('ol', {}, (m.events || []).map((e) => el('li', {}, rel(e.at), ` ${e.state}${e.error ? ': ' + e.error : ''}`))));
      const mname = el('input', { id: 'mcp-name', required: true, pattern: '[A-Za-z0-9_-]+' });
      const target = el('input', { id: 'mcp-target', required: true, placeholder: 'npx -y @scope/server  or  https://host/mcp' });
      const form = el('form', { class: 'filters' }, el('label', { for: 'mcp-name' }, 'Name', mname), el('label', { for: 'mcp-target' }, 'Command or URL', target), el('button', { type: 'submit' }, 'Add server'));
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        const t = target.value.trim();
        const words = t.split(/\s+/);
        const def = /^https?:\/\//.test(t) ? { name: mname.value, url: t } : { name: mname.value, command: words[0], args: words.slice(1) };
        act(() => api('POST', '/mcp-servers', def));
      });
      body.append(table([['Name', (m) => m.name], ['Scope', (m) => m.scope], ['State', state], ['Tools', (m) => String(m.tools)],
        ['', (m) => [el('button', { type: 'button', class: 'ghost', 'aria-label': `Restart ${m.name}`, onclick: () => act(() => api('POST', `/mcp-servers/${encodeURIComponent(m.name)}/restart`)) }, 'restart'), ' ', m.scope === 'tenant' ? del(`/mcp-servers/${encodeURIComponent(m.name)}`, m.name) : '']]], p.data, 'No MCP servers yet.'),
        el('h2', {}, 'Add a server'), el('p', { class: 'hint' }, 'A stdio server runs in the sandbox; an HTTP server must be reachable through the egress rules.'), form);
    } else if (which === 'skills') {
      const p = await api('GET', '/skills');
      const text = el('textarea', { id: 'skill-md', rows: 8, placeholder: '---\nname: my-skill\ndescription: what it does\n---\nInstructions…' });
      const form = el('form', {}, el('label', { for: 'skill-md' }, 'SKILL.md'), text, el('button', { type: 'submit' }, 'Upload skill'));
      form.addEventListener('submit', (e) => { e.preventDefault(); act(() => api('POST', '/skills', { content: text.value })); });
      // A whole skill: a folder (SKILL.md and the files beside it) or a .zip of one.
      const dir = el('input', { type: 'file', id: 'skill-dir', webkitdirectory: true, multiple: true });
      const zip = el('input', { type: 'file', id: 'skill-zip', accept: '.zip,application/zip' });
      const upload = async (entries) => {
        const root = entries.find(([path]) => /(^|\/)SKILL\.md$/.test(path));
        if (!root) throw new Error('No SKILL.md in what was chosen.');
        const base = root[0].slice(0, -'SKILL.md'.length);
        const files = {};
        for (const [path, data] of entries) if (path !== root[0] && path.startsWith(base) && !path.endsWith('/')) files[path.slice(base.length)] = data;
        await api('POST', '/skills', { content: root[1], files });
      };
      dir.addEventListener('change', () => act(async () => upload(await Promise.all([...dir.files].map(async (f) => [f.webkitRelativePath || f.name, await f.text()])))));
      zip.addEventListener('change', () => act(async () => upload(await unzip(zip.files[0]))));
      const view = (k) => el('button', { type: 'button', class: 'ghost', 'aria-label': `View ${k.name}`, onclick: async () => {
        try { const s = await api('GET', `/skills/${encodeURIComponent(k.name)}`); shown.replaceChildren(el('h3', {}, k.name), el('p', {}, s.description), el('pre', {}, s.body), ...Object.entries(s.files || {}).map(([f, c]) => el('details', {}, el('summary', { class: 'mono' }, f), el('pre', {}, c)))); } catch (e) { msg.textContent = e.message; }
      } }, 'view');
      const shown = el('div', { 'aria-live': 'polite' });
      body.append(table([['Name', (k) => k.name], ['Description', (k) => k.description], ['Source', (k) => k.source], ['Files', (k) => String((k.files || []).length)],
        ['', (k) => [view(k), ' ', k.source === 'tenant' ? del(`/skills/${encodeURIComponent(k.name)}`, k.name) : '']]], p.data, 'No skills.'), shown,
        el('h2', {}, 'Upload'), el('div', { class: 'filters' }, el('label', { for: 'skill-dir' }, 'A skill folder', dir), el('label', { for: 'skill-zip' }, 'A .zip of one', zip)), form);
    } else if (which === 'templates') {
      const p = await api('GET', '/prompt-templates');
      const name = el('input', { id: 'tpl-name', required: true }); const content = el('textarea', { id: 'tpl-content', rows: 4 });
      const sample = el('textarea', { id: 'tpl-args', rows: 4, placeholder: '{"name": "Ada"}' });
      const rendered = el('pre', { id: 'tpl-preview', 'aria-live': 'polite' });
      const form = el('form', { class: 'filters' }, el('label', { for: 'tpl-name' }, 'Name', name), el('label', { for: 'tpl-content' }, 'Content (minijinja)', content),
        el('label', { for: 'tpl-args' }, 'Sample arguments (JSON)', sample), el('button', { type: 'submit' }, 'Create template'));
      form.addEventListener('submit', (e) => { e.preventDefault(); act(() => api('POST', '/prompt-templates', { name: name.value, content: content.value })); });
      let timer = null;
      const live = () => { clearTimeout(timer); timer = setTimeout(async () => {
        let args = {};
        try { args = sample.value.trim() ? JSON.parse(sample.value) : {}; } catch { rendered.textContent = 'The sample arguments are not valid JSON.'; return; }
        try { const r = await api('POST', '/template-preview', { content: content.value, arguments: args }); rendered.textContent = r.error ? r.error.message : r.text; } catch (err) { rendered.textContent = err.message; }
      }, 250); };
      content.addEventListener('input', live); sample.addEventListener('input', live);
      body.append(table([['Name', (t) => t.name], ['Variables', (t) => (t.variables || []).join(', ')], ['Content', (t) => el('pre', {}, t.content)], ['', (t) => del(`/prompt-templates/${encodeURIComponent(t.name)}`, t.name)]], p.data, 'No templates.'), el('h2', {}, 'New template'), form, el('h3', {}, 'Preview'), rendered);
    } else if (which === 'prompts') {
      // Saved prompts: text kept to insert into the composer ("Insert a saved prompt").
      const p = await api('GET', '/prompts');
      const name = el('input', { id: 'prompt-name', required: true }); const text = el('textarea', { id: 'prompt-text', rows: 4, required: true });
      const tags = el('input', { id: 'prompt-tags', placeholder: 'review, code' });
      const submit = el('button', { type: 'submit' }, 'Save prompt');
      let editing = null;
      const form = el('form', { class: 'filters' }, el('label', { for: 'prompt-name' }, 'Name', name), el('label', { for: 'prompt-text' }, 'Text', text),
        el('label', { for: 'prompt-tags' }, 'Tags (comma-separated)', tags), submit);
      const edit = (d) => el('button', { type: 'button', class: 'ghost', 'aria-label': `Edit ${d.name}`, onclick: () => {
        editing = d.name; name.value = d.name; name.disabled = true; text.value = d.text; tags.value = (d.tags || []).join(', '); submit.textContent = 'Replace prompt'; text.focus();
      } }, 'edit');
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        const body = { text: text.value, tags: tags.value.split(',').map((t) => t.trim()).filter(Boolean) };
        act(() => (editing ? api('PUT', `/prompts/${encodeURIComponent(editing)}`, body) : api('POST', '/prompts', { name: name.value, ...body })));
      });
      body.append(table([['Name', (d) => d.name], ['Tags', (d) => (d.tags || []).join(', ')], ['Text', (d) => el('pre', {}, d.text)],
        ['', (d) => [edit(d), ' ', del(`/prompts/${encodeURIComponent(d.name)}`, d.name)]]], p.data, 'No saved prompts.'), el('h2', {}, 'New saved prompt'), form);
    } else if (which === 'models') {
      const [provs, profs] = await Promise.all([api('GET', '/providers'), api('GET', '/model-profiles')]);
      const health = (name) => { const out = el('span', { role: 'status' }); return [el('button', { type: 'button', class: 'ghost', onclick: async () => { out.textContent = '…'; try { const h = await api('GET', `/providers/${encodeURIComponent(name)}/health`); out.textContent = h.ok ? `ok: ${h.detail}` : `failed: ${h.error}`; } catch (e) { out.textContent = e.message; } } }, 'check'), ' ', out]; };
      body.append(el('h2', {}, 'Providers'), table([['Name', (p) => p.name], ['Type', (p) => p.kind || p.type], ['Source', (p) => p.source + (p.shadowed ? ' (hidden by the tenant\'s)' : '')], ['Base URL', (p) => p.base_url || ''], ['Key', (p) => (p.api_key ? `secret ${p.api_key.secret}` : '')],
        ['', (p) => [health(p.name), ' ', p.source === 'tenant' ? del(`/providers/${encodeURIComponent(p.name)}`, p.name) : '']]], provs.data, 'No provider: set OPENAI_API_KEY or add one with POST /v1/providers.'),
      el('h2', {}, 'Model profiles'), table([['Name', (m) => m.name], ['Provider', (m) => m.provider], ['Model', (m) => m.model], ['Source', (m) => m.source], ['', (m) => (m.source === 'tenant' ? del(`/model-profiles/${encodeURIComponent(m.name)}`, m.name) : '')]], profs.data, 'No profiles.'));
    } else if (which === 'keys') {
      const p = await api('GET', '/api-keys');
      const role = el('select', { id: 'key-role' }, ['member', 'viewer', 'admin'].map((r) => el('option', { value: r }, r)));
      const kname = el('input', { id: 'key-name' });
      const shown = el('pre', { 'aria-live': 'polite' });
      const form = el('form', { class: 'filters' }, el('label', { for: 'key-role' }, 'Role', role), el('label', { for: 'key-name' }, 'Name', kname), el('button', { type: 'submit' }, 'Create key'), shown);
      form.addEventListener('submit', async (e) => { e.preventDefault(); try { const k = await api('POST', '/api-keys', { role: role.value, name: kname.value || undefined }); shown.textContent = `Store this key now, it is shown once:\n${k.secret}`; } catch (err) { msg.textContent = err.message; } });
      body.append(table([['Id', (k) => copyable(k.id)], ['Name', (k) => k.name], ['Role', (k) => k.role], ['Org', (k) => k.org || '*'], ['State', (k) => (k.revoked_at ? 'revoked' : k.expires_at ? `expires ${k.expires_at}` : 'active')],
        ['Last used', (k) => (k.last_used_at ? rel(k.last_used_at) : 'never')], ['', (k) => (k.revoked_at ? '' : el('button', { type: 'button', class: 'danger', onclick: () => confirm('Revoke this key?') && act(() => api('DELETE', `/api-keys/${encodeURIComponent(k.id)}`)) }, 'revoke'))]], p.data, 'No keys.'), el('h2', {}, 'New key'), form);
    } else if (which === 'usage') {
      const group = new URLSearchParams(location.search).get('group_by') || 'day';
      const r = await api('GET', `/usage?group_by=${group}`);
      const top = Math.max(1, ...r.data.map((x) => x.total_tokens));
      body.append(el('p', {}, ['day', 'model', 'agent', 'user'].map((g) => [el('a', { href: `/manage?group_by=${g}#usage`, 'aria-current': g === group ? 'page' : null }, g), ' '])),
        table([['Key', (x) => x.key], ['Tokens', (x) => el('div', {}, String(x.total_tokens), el('div', { class: 'bar', style: `width:${(x.total_tokens / top) * 100}%` }))], ['Cost', (x) => `$${x.cost_usd.toFixed(4)}`], ['Runs', (x) => String(x.runs)], ['Tool calls', (x) => String(x.tool_calls)]], r.data, 'No usage in this window.'),
        el('p', { class: 'hint' }, `Total: ${r.total.total_tokens} tokens, $${r.total.cost_usd.toFixed(4)}, ${r.total.runs} runs, from ${r.from} to ${r.to}.`));
    }
  } catch (e) { msg.textContent = e.message; }
}

async function diagnostics() {
  const section = el('section', { class: 'page' }, el('h1', {}, 'Diagnostics'));
  main.replaceChildren(section);
  try {
    const d = await api('GET', '/diagnostics');
    const line = (ok, name, detail) => el('li', {}, el('span', { class: ok ? 'status-ok' : 'status-bad' }, ok ? '✓ ' : '✗ '), el('strong', {}, name), ` ${detail}`);
    section.append(el('ul', { class: 'checks' },
      line(true, 'version', `${d.version} on node ${d.node_id}, up ${d.uptime_secs} s, auth ${d.auth}`),
      line(d.database.ok, 'database', d.database.error || 'answers'),
      line(true, 'queue', `${d.queued_runs} queued, ${d.active_runs} running here`),
      d.providers.length ? d.providers.map((p) => line(p.ok, `provider ${p.name}`, p.detail)) : line(false, 'providers', 'none configured'),
      d.mcp_servers.map((m) => line(m.ok, `MCP ${m.name}`, m.detail)),
      line(d.sandbox.ok, 'sandbox', d.sandbox.ok ? `bubblewrap at ${d.sandbox.configured?.[0]}` : d.sandbox.error)));
  } catch (e) { section.append(el('p', { class: 'error', role: 'alert' }, e.message)); }
}

// ---- router ----------------------------------------------------------------

const pages = { chat: () => chat(main.dataset.id || null), runs, run: () => runPage(main.dataset.id), approvals, files: () => files(main.dataset.id), manage, diagnostics };
(pages[main.dataset.page] || pages.chat)().catch((e) => main.append(el('p', { class: 'error', role: 'alert' }, e.message)));
addEventListener('popstate', () => location.reload());
