// Falcon live page: plain JavaScript, no build step. Payloads are only ever written with
// textContent, never as HTML. Served under a strict Content-Security-Policy: no inline script
// or style, connections only to its own origin and the configured ingest and query URLs.
const MAX_ROWS = 500;
/** Persisted messages shown on opening, read from the query API. */
const RECENT = 100;
const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 10_000;
/** sessionStorage key of a token typed into the page: it lives as long as the tab, never longer. */
const TOKEN_KEY = 'falcon.accessToken';

const $ = (id) => document.getElementById(id);
const els = {
  conn: $('conn'), connText: $('conn-text'), rows: $('messages'), empty: $('empty'), notice: $('notice'),
  pipe: { received: $('pipe-received'), persisted: $('pipe-persisted'), backlog: $('pipe-backlog'), backlogDetail: $('pipe-backlog-detail'), clients: $('pipe-clients') },
  lastSeq: $('stat-last-seq'), received: $('stat-received'), latency: $('stat-latency'), reconnects: $('stat-reconnects'),
  form: $('send-form'), payload: $('payload'), result: $('send-result'),
  tokenSection: $('token-section'), tokenForm: $('token-form'), token: $('token'), tokenReason: $('token-reason'),
};

const state = {
  lastSeq: undefined,
  // True from a load through the query API until the next welcome: a resume that fails right
  // after one is not reloaded again (that could loop), it goes live from where the stream is.
  justLoaded: false,
  received: 0,
  reconnects: 0,
  latencies: [],
  queue: [],
  ws: undefined,
  retry: undefined,
  delay: RECONNECT_MIN_MS,
  // `token`: the read/subscribe token the operator configured for the page (REALTIME_PAGE_TOKEN).
  config: { ingestUrl: '', queryUrl: '', token: undefined },
  // A token typed into the page; it takes the place of the configured one.
  typedToken: undefined,
};

function readTypedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
  } catch {
    return undefined; // storage disabled: the token then lives in memory only
  }
}

function keepTypedToken(token) {
  state.typedToken = token;
  try {
    if (token === undefined) sessionStorage.removeItem(TOKEN_KEY);
    else sessionStorage.setItem(TOKEN_KEY, token);
  } catch {
    // memory only
  }
}

/** The bearer token for ingest, query and /ws, or undefined when the page runs without one. */
function accessToken() {
  return state.typedToken ?? state.config.token ?? undefined;
}

/** Authorization for fetch (RFC 6750 section 2.1). */
function authHeaders() {
  const token = accessToken();
  return token === undefined ? {} : { authorization: `Bearer ${token}` };
}

/** Shows the token field with why it is needed. */
function askForToken(reason) {
  els.tokenReason.textContent = reason;
  els.tokenSection.hidden = false;
}


function setConnection(kind, text) {
  els.conn.dataset.state = kind;
  els.connText.textContent = text;
}

function notice(text) {
  els.notice.hidden = !text;
  els.notice.textContent = text ?? '';
}

function median(values) {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function row(m) {
  const tr = document.createElement('tr');
  tr.className = 'fresh';
  tr.dataset.seq = String(m.seq);
  const cells = [
    ['seq', String(m.seq)],
    ['time', new Date(m.receivedAt).toLocaleTimeString(undefined, { hour12: false, hour: '2-digit', minute: '2-digit', second: '2-digit', fractionalSecondDigits: 3 })],
    ['lat', m.latencyMs === undefined ? '–' : `${m.latencyMs} ms`],
    ['id', m.id],
    ['payload', JSON.stringify(m.payload)],
  ];
  for (const [cls, text] of cells) {
    const td = document.createElement('td');
    td.className = cls;
    td.textContent = text;
    tr.appendChild(td);
  }
  return tr;
}

// Rendering is batched per animation frame and bounded to MAX_ROWS, so a burst of thousands of
// messages costs one DOM update per frame rather than one per message.
let renderScheduled = false;
function render() {
  renderScheduled = false;
  const batch = state.queue.splice(0).slice(-MAX_ROWS);
  if (batch.length === 0) return;
  const fragment = document.createDocumentFragment();
  for (let i = batch.length - 1; i >= 0; i--) fragment.appendChild(row(batch[i]));
  els.rows.prepend(fragment);
  while (els.rows.childElementCount > MAX_ROWS) els.rows.lastElementChild.remove();
  els.empty.hidden = true;
  els.lastSeq.textContent = String(state.lastSeq);
  els.received.textContent = state.received.toLocaleString();
  const p50 = median(state.latencies);
  els.latency.textContent = p50 === undefined ? '–' : `${p50} ms`;
}

/** The stream's last seq as the gateway last read it, or undefined. */
async function streamLastSeq() {
  try {
    const res = await fetch('/status.json', { cache: 'no-store' });
    if (!res.ok) return undefined;
    const s = await res.json();
    return s.received ?? s.gatewayLastSeq;
  } catch {
    return undefined;
  }
}

/**
 * The most recent persisted messages (query API) and the seq to resume the live stream after:
 * the last one loaded, or the start of the window asked for when none came back (the stream
 * then delivers that window itself). Undefined `since` means: nothing known, just go live.
 */
async function loadRecent() {
  const last = await streamLastSeq();
  if (last === undefined) return { rows: [], since: undefined };
  const after = Math.max(0, last - RECENT);
  try {
    const url = new URL('/api/messages', state.config.queryUrl || location.href);
    url.searchParams.set('after', String(after));
    url.searchParams.set('limit', String(RECENT));
    const res = await fetch(url, { cache: 'no-store', headers: authHeaders() });
    if (res.status === 401 || res.status === 403) return { rows: [], since: after, refused: res.status };
    if (!res.ok) return { rows: [], since: after };
    const rows = await res.json();
    return { rows, since: rows.length > 0 ? rows[rows.length - 1].seq : after };
  } catch {
    return { rows: [], since: after };
  }
}

/** Replaces what the page shows with `rows` (ascending seq), newest first. */
function showHistory(rows) {
  state.queue = [];
  els.rows.replaceChildren(...rows.slice(-MAX_ROWS).reverse().map((m) => row({ ...m, latencyMs: undefined })));
  els.empty.hidden = rows.length > 0;
}

/** Closes the live connection, if any, without reconnecting. */
function disconnect() {
  clearTimeout(state.retry);
  state.retry = undefined;
  const ws = state.ws;
  state.ws = undefined;
  if (!ws) return;
  ws.onclose = null;
  ws.onmessage = null;
  ws.close();
}

/** On opening and when a resume cannot be served: load from the query API, then go live after it. */
async function reload() {
  const { rows, since, refused } = await loadRecent();
  if (refused) {
    // Without a token the live stream refuses too: wait for one rather than retry in a loop.
    setConnection('offline', 'needs an access token');
    askForToken(refused === 401
      ? (accessToken() === undefined ? 'This Falcon needs an access token with messages:read and messages:subscribe.' : 'The access token was refused (expired or not valid here).')
      : 'This access token may not read messages: it needs messages:read and messages:subscribe.');
    return;
  }
  showHistory(rows);
  state.lastSeq = since;
  state.justLoaded = true;
  els.lastSeq.textContent = since === undefined ? '–' : String(since);
  connect();
}

function onMessage(m) {
  // The gateway guarantees order and no duplicates; this guard keeps the page honest anyway.
  if (state.lastSeq !== undefined && m.seq <= state.lastSeq) return;
  state.lastSeq = m.seq;
  state.received += 1;
  m.latencyMs = Math.max(0, Date.now() - Date.parse(m.receivedAt));
  state.latencies.push(m.latencyMs);
  if (state.latencies.length > 200) state.latencies.shift();
  state.queue.push(m);
  if (!renderScheduled) {
    renderScheduled = true;
    requestAnimationFrame(render);
  }
}

function connect() {
  state.retry = undefined;
  const url = new URL('/ws', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  if (state.lastSeq !== undefined) url.searchParams.set('since', String(state.lastSeq));
  // Browsers cannot set headers on a WebSocket: the contract takes the token in the query.
  const token = accessToken();
  if (token !== undefined) url.searchParams.set('access_token', token);
  const ws = new WebSocket(url);
  state.ws = ws;
  setConnection('connecting', state.lastSeq === undefined ? 'connecting…' : `resuming after #${state.lastSeq}…`);
  ws.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type === 'welcome') {
      state.delay = RECONNECT_MIN_MS;
      if (state.lastSeq !== undefined && !frame.recovered) {
        if (!state.justLoaded) {
          // The stream no longer holds what follows lastSeq (trimmed, or recreated with new
          // seqs): keeping lastSeq would drop every message up to it. Reload from the query API.
          disconnect();
          notice('The stream could not resume where this page was; reloaded the latest messages from the query API.');
          void reload();
          return;
        }
        // Even right after a load the stream cannot continue from it: go live from where the
        // stream is now, and drop rows that are ahead of it (left from a recreated stream).
        notice(`Messages after #${state.lastSeq} are no longer in the stream; live from #${frame.lastSeq + 1}.`);
        for (const tr of [...els.rows.children]) if (Number(tr.dataset.seq) > frame.lastSeq) tr.remove();
        state.lastSeq = frame.lastSeq;
      }
      state.justLoaded = false;
      setConnection('live', 'live');
      // From here on every message is ours: a reconnect resumes after this point.
      if (state.lastSeq === undefined) state.lastSeq = frame.lastSeq;
      els.lastSeq.textContent = String(state.lastSeq);
    } else if (frame.type === 'message') {
      onMessage(frame);
    }
  };
  ws.onclose = (event) => {
    state.ws = undefined;
    state.reconnects += 1;
    els.reconnects.textContent = String(state.reconnects);
    if (event.code === 1008) {
      // The token expired (or was revoked): the operator may have configured a new one.
      setConnection('offline', 'access token expired');
      void refreshConfig().then(reload);
      return;
    }
    const wait = state.delay;
    state.delay = Math.min(RECONNECT_MAX_MS, state.delay * 2);
    setConnection('offline', `disconnected (${event.code}); retrying in ${(wait / 1000).toFixed(1)} s`);
    state.retry = setTimeout(connect, wait);
  };
}

async function send(event) {
  event.preventDefault();
  els.result.className = '';
  let body;
  try {
    body = JSON.parse(els.payload.value);
  } catch (err) {
    els.result.className = 'error';
    els.result.textContent = `Not valid JSON: ${err.message}`;
    return;
  }
  try {
    const res = await fetch(new URL('/api/messages', state.config.ingestUrl || location.href), {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': crypto.randomUUID(), ...authHeaders() },
      body: JSON.stringify(body),
    });
    const answer = await res.json();
    if (res.status === 202) {
      els.result.textContent = `Accepted as #${answer.seq} (${answer.id})`;
    } else {
      els.result.className = 'error';
      els.result.textContent = `${res.status}: ${answer.detail ?? answer.title}`;
      if (res.status === 401 || res.status === 403) askForToken('Posting needs an access token with messages:write (the page\'s own token can only read and subscribe).');
    }
  } catch (err) {
    els.result.className = 'error';
    els.result.textContent = `Could not reach ingest: ${err.message}`;
  }
}

const fmt = (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString());

// The pipeline's counters come from the gateway, which reads them from JetStream itself.
async function pollStatus() {
  try {
    const res = await fetch('/status.json', { cache: 'no-store' });
    if (res.ok) {
      const s = await res.json();
      els.pipe.received.textContent = fmt(s.received);
      els.pipe.persisted.textContent = fmt(s.persisted);
      const backlog = s.pending === null || s.pending === undefined ? null : s.pending + s.unacknowledged;
      els.pipe.backlog.textContent = fmt(backlog);
      els.pipe.backlogDetail.textContent = `${fmt(s.pending)} pending · ${fmt(s.unacknowledged)} unacknowledged`;
      els.pipe.clients.textContent = fmt(s.clients);
    }
  } catch {
    // The connection badge already says the gateway is away.
  }
  setTimeout(pollStatus, 1000);
}

async function refreshConfig() {
  try {
    const res = await fetch('/config.json', { cache: 'no-store' });
    if (res.ok) state.config = await res.json();
  } catch {
    // Posting and reading fall back to this origin.
  }
}

// RFC 6750 section 2.1's b64token: anything else could not be sent as a header value.
const BEARER_TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

function useToken(event) {
  event.preventDefault();
  const token = els.token.value.trim();
  if (token !== '' && !BEARER_TOKEN.test(token)) {
    els.tokenReason.textContent = 'That is not a bearer token (a JWT is three base64url parts joined by dots).';
    return;
  }
  els.token.value = '';
  keepTypedToken(token === '' ? undefined : token);
  els.tokenSection.hidden = true;
  els.result.textContent = '';
  disconnect();
  void reload();
}

async function start() {
  state.typedToken = readTypedToken();
  await refreshConfig();
  els.form.addEventListener('submit', send);
  els.tokenForm.addEventListener('submit', useToken);
  pollStatus();
  await reload();
}

start();
