// Falcon live page: plain JavaScript, no build step. Payloads are only ever written with
// textContent, never as HTML.
const MAX_ROWS = 500;
/** Persisted messages shown on opening, read from the query API. */
const RECENT = 100;
const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 10_000;

const $ = (id) => document.getElementById(id);
const els = {
  conn: $('conn'), connText: $('conn-text'), rows: $('messages'), empty: $('empty'), notice: $('notice'),
  pipe: { received: $('pipe-received'), persisted: $('pipe-persisted'), backlog: $('pipe-backlog'), backlogDetail: $('pipe-backlog-detail'), clients: $('pipe-clients') },
  lastSeq: $('stat-last-seq'), received: $('stat-received'), latency: $('stat-latency'), reconnects: $('stat-reconnects'),
  form: $('send-form'), payload: $('payload'), result: $('send-result'),
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
  delay: RECONNECT_MIN_MS,
  config: { ingestUrl: '', queryUrl: '' },
};

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
    const res = await fetch(url, { cache: 'no-store' });
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

/** On opening and when a resume cannot be served: load from the query API, then go live after it. */
async function reload() {
  const { rows, since } = await loadRecent();
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
  const url = new URL('/ws', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  if (state.lastSeq !== undefined) url.searchParams.set('since', String(state.lastSeq));
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
          ws.onclose = null;
          ws.onmessage = null;
          ws.close();
          state.ws = undefined;
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
    const wait = state.delay;
    state.delay = Math.min(RECONNECT_MAX_MS, state.delay * 2);
    setConnection('offline', `disconnected (${event.code}); retrying in ${(wait / 1000).toFixed(1)} s`);
    setTimeout(connect, wait);
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
      headers: { 'content-type': 'application/json', 'idempotency-key': crypto.randomUUID() },
      body: JSON.stringify(body),
    });
    const answer = await res.json();
    if (res.status === 202) {
      els.result.textContent = `Accepted as #${answer.seq} (${answer.id})`;
    } else {
      els.result.className = 'error';
      els.result.textContent = `${res.status}: ${answer.detail ?? answer.title}`;
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

async function start() {
  try {
    const res = await fetch('/config.json', { cache: 'no-store' });
    if (res.ok) state.config = await res.json();
  } catch {
    // Posting and reading fall back to this origin.
  }
  els.form.addEventListener('submit', send);
  pollStatus();
  await reload();
}

start();
