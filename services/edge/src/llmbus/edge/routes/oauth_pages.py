"""The login pages: one self-contained HTML document per family (inline style and
script, no external asset), which asks for the management key, starts the flow through
the JSON API, shows the user code and the link, polls the flow's status at its interval
and shows the credential or the error. Everything the API returns is written with
`textContent`, never as HTML."""

from __future__ import annotations

from html import escape

__all__ = ["login_page"]

_TITLES = {"copilot": "GitHub Copilot", "kiro": "Kiro (Amazon Q Developer)"}

_KIRO_FIELDS = """
  <fieldset>
    <legend>Sign in with</legend>
    <label><input type="radio" name="method" value="builder-id" checked> AWS Builder ID</label>
    <label><input type="radio" name="method" value="identity-center"> IAM Identity Center</label>
    <div id="idc" hidden>
      <label>Start URL <input id="start_url" type="url" placeholder="https://my-org.awsapps.com/start"></label>
      <label>Region <input id="region" type="text" placeholder="us-east-1" size="14"></label>
    </div>
  </fieldset>
"""

_STYLE = """
  body { font: 15px/1.5 system-ui, sans-serif; max-width: 36rem; margin: 3rem auto; padding: 0 1rem;
         color: #1f2328; background: #f6f8fa; }
  main { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 1.5rem 2rem; }
  h1 { font-size: 1.35rem; margin-top: 0; }
  label { display: block; margin: .5rem 0; }
  input[type=password], input[type=url], input[type=text] { font: inherit; padding: .35rem .5rem;
         border: 1px solid #d0d7de; border-radius: 6px; }
  input[type=password], input[type=url] { width: 100%; box-sizing: border-box; }
  fieldset { border: 1px solid #d0d7de; border-radius: 6px; margin: 1rem 0; }
  button { font: inherit; padding: .45rem 1.2rem; border: 0; border-radius: 6px; background: #1f883d;
           color: #fff; cursor: pointer; }
  button:disabled { background: #8c959f; cursor: default; }
  #code { font: 700 2rem/1.2 ui-monospace, monospace; letter-spacing: .15em; margin: .5rem 0; }
  #status { margin-top: 1rem; padding: .6rem .8rem; border-radius: 6px; background: #ddf4ff; }
  #status.ok { background: #dafbe1; } #status.bad { background: #ffebe9; }
  small { color: #59636e; }
"""

_SCRIPT = """
const $ = (id) => document.getElementById(id);
const family = document.body.dataset.family;
for (const radio of document.querySelectorAll('input[name=method]')) {
  radio.addEventListener('change', () => {
    $('idc').hidden = document.querySelector('input[name=method]:checked').value !== 'identity-center';
  });
}
function say(text, kind) {
  const box = $('status');
  box.hidden = false;
  box.className = kind || '';
  box.textContent = text;
}
async function call(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { 'Authorization': 'Bearer ' + $('key').value.trim(), 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error((data.error && data.error.message) || ('HTTP ' + response.status));
  }
  return data;
}
const sleep = (seconds) => new Promise((done) => setTimeout(done, seconds * 1000));
const OUTCOMES = {
  expired: 'The code expired before it was used. Start again.',
  denied: 'The sign-in was refused.',
};
async function login(event) {
  event.preventDefault();
  const body = {};
  if (family === 'kiro') {
    body.method = document.querySelector('input[name=method]:checked').value;
    if (body.method === 'identity-center') {
      body.start_url = $('start_url').value.trim();
      body.region = $('region').value.trim();
    }
  }
  $('go').disabled = true;
  $('flow').hidden = true;
  say('Asking for a code…');
  try {
    const flow = await call('POST', '/v0/oauth/' + family + '/start', body);
    $('code').textContent = flow.user_code;
    const link = $('link');
    link.href = flow.verification_uri_complete || flow.verification_uri;
    link.textContent = flow.verification_uri;
    $('flow').hidden = false;
    const deadline = Date.now() + flow.expires_in * 1000;
    say('Waiting for you to enter the code…');
    while (Date.now() < deadline) {
      await sleep(Math.max(1, flow.interval));
      const state = await call('GET', '/v0/oauth/flows/' + encodeURIComponent(flow.flow_id));
      if (state.status === 'pending') continue;
      $('flow').hidden = true;
      if (state.status === 'success') {
        say('Signed in. New credential: ' + state.provider + '/' + state.credential, 'ok');
      } else {
        say(OUTCOMES[state.status] || ('The sign-in failed: ' + (state.error || state.status)), 'bad');
      }
      return;
    }
    say(OUTCOMES.expired, 'bad');
  } catch (error) {
    say(error.message, 'bad');
  } finally {
    $('go').disabled = false;
  }
}
$('form').addEventListener('submit', login);
"""


def login_page(family: str) -> str:
    title = escape(_TITLES[family])
    fields = _KIRO_FIELDS if family == "kiro" else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in to {title} · llmbus</title>
<style>{_STYLE}</style>
</head>
<body data-family="{escape(family)}">
<main>
  <h1>Sign in to {title}</h1>
  <form id="form">
    <label>Management key
      <input id="key" type="password" autocomplete="off" required placeholder="the gateway's management key">
    </label>
    {fields}
    <button id="go" type="submit">Get a sign-in code</button>
  </form>
  <section id="flow" hidden>
    <p>Open <a id="link" target="_blank" rel="noopener noreferrer"></a> and enter this code:</p>
    <div id="code"></div>
    <small>This page checks by itself whether you are done.</small>
  </section>
  <div id="status" hidden role="status"></div>
</main>
<script>{_SCRIPT}</script>
</body>
</html>
"""
