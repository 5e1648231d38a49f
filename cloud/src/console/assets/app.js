// pifleet web console (served as is by the local IoT Core; no build step).
// Two views behind a hash router: the fleet (#/) and one thing (#/thing/NAME). Live data comes
// from one EventSource per view; the browser reconnects it by itself and the server starts each
// stream with a full snapshot, so a reconnect never leaves the page stale.

const ROW_HEIGHT = 36;
const OVERSCAN = 8;
const CHART_WINDOW_MS = 10 * 60_000;

const $ = (sel, root = document) => root.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== undefined && c !== null) node.append(c);
  return node;
}

function ago(ms, now) {
  if (ms === null || ms === undefined) return '—';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(ms).toLocaleString();
}

const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false });
const clockMs = (ms) => `${clock(ms)}.${String(Math.floor(ms % 1000)).padStart(3, '0')}`;

function fmtValue(v) {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(2);
  return String(v);
}

/** Path of a leaf the way the server (protocol `formatPath`) writes it: `a.b`, `a["x y"]`. */
function formatPath(parts) {
  let out = '';
  for (const key of parts) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(key)) out += out ? `.${key}` : key;
    else out += `[${JSON.stringify(String(key))}]`;
  }
  return out || '$';
}

const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);

function leaves(obj, prefix = [], out = []) {
  if (!isObject(obj)) return out;
  for (const [k, v] of Object.entries(obj)) {
    if (isObject(v) && Object.keys(v).length > 0) leaves(v, [...prefix, k], out);
    else out.push({ parts: [...prefix, k], value: v });
  }
  return out;
}

function getAt(obj, parts) {
  let cur = obj;
  for (const p of parts) {
    if (!isObject(cur)) return undefined;
    cur = cur[p];
  }
  return cur;
}

function setAt(obj, parts, value) {
  let cur = obj;
  for (const p of parts.slice(0, -1)) {
    if (!isObject(cur[p])) cur[p] = {};
    cur = cur[p];
  }
  cur[parts[parts.length - 1]] = value;
}

const jsonEqual = (a, b) => JSON.stringify(a) === JSON.stringify(b);

// ---- JSON Schema subset (what the protocol's desired-state schema uses) ----------------------

function validateSchema(schema, value, parts = [], issues = []) {
  if (!schema) return issues;
  const at = formatPath(parts);
  const type = schema.type;
  if (type === 'object') {
    if (!isObject(value)) {
      issues.push({ path: at, message: 'must be an object' });
      return issues;
    }
    for (const [k, v] of Object.entries(value)) {
      // Own keys only: `constructor` must not find Object's constructor and pass unchecked.
      const prop = schema.properties && Object.hasOwn(schema.properties, k) ? schema.properties[k] : undefined;
      if (prop) {
        validateSchema(prop, v, [...parts, k], issues);
        continue;
      }
      if (schema.additionalProperties === false) {
        issues.push({ path: formatPath([...parts, k]), message: 'unknown key' });
        continue;
      }
      const pattern = schema.propertyNames?.pattern;
      if (pattern && !new RegExp(pattern).test(k)) {
        issues.push({ path: formatPath([...parts, k]), message: `invalid id ${JSON.stringify(k)}` });
        continue;
      }
      if (isObject(schema.additionalProperties)) validateSchema(schema.additionalProperties, v, [...parts, k], issues);
    }
    return issues;
  }
  if (type === 'integer' || type === 'number') {
    if (typeof value !== 'number' || !Number.isFinite(value)) issues.push({ path: at, message: 'must be a number' });
    else if (type === 'integer' && !Number.isInteger(value)) issues.push({ path: at, message: 'must be an integer' });
    else if (schema.minimum !== undefined && value < schema.minimum) {
      issues.push({ path: at, message: `must be at least ${schema.minimum}` });
    } else if (schema.maximum !== undefined && value > schema.maximum) {
      issues.push({ path: at, message: `must be at most ${schema.maximum}` });
    }
    return issues;
  }
  if (type === 'boolean' && typeof value !== 'boolean') issues.push({ path: at, message: 'must be true or false' });
  if (type === 'string' && typeof value !== 'string') issues.push({ path: at, message: 'must be a string' });
  if (schema.enum && !schema.enum.includes(value)) {
    issues.push({ path: at, message: `must be one of ${schema.enum.join(', ')}` });
  }
  return issues;
}

// ---- live stream ----------------------------------------------------------------------------

let source = null;

function openStream(url, handlers) {
  if (source) source.close();
  const streamEl = $('#stream');
  const es = new EventSource(url);
  source = es;
  const setState = (state, text) => {
    streamEl.dataset.state = state;
    streamEl.textContent = text;
  };
  setState('connecting', 'connecting…');
  es.addEventListener('open', () => setState('live', 'live'));
  es.addEventListener('error', () => {
    if (es.readyState === EventSource.CLOSED) {
      setState('closed', 'disconnected — reload, or reopen the console URL if the session ended');
    } else setState('reconnecting', 'reconnecting…');
  });
  for (const [event, handler] of Object.entries(handlers)) {
    es.addEventListener(event, (e) => {
      if (source !== es) return;
      handler(JSON.parse(e.data));
    });
  }
}

// ---- fleet view -----------------------------------------------------------------------------

const fleet = {
  things: new Map(),
  /** Names shown (sorted, filtered). */
  shown: [],
  filter: '',
  rows: new Map(),
  renderQueued: false,
  /** Skew between the server's clock and this page's. */
  skew: 0,
  /** A thing heard of longer ago than this is flagged silent (the server's setting, in its snapshot). */
  silentAfterMs: 15 * 60_000,
  /** `local` (the core's own console) or `aws` (pifleet console against an account). */
  target: 'local',
};

function recomputeShown() {
  const f = fleet.filter.trim().toLowerCase();
  const names = [];
  for (const name of fleet.things.keys()) if (!f || name.toLowerCase().includes(f)) names.push(name);
  names.sort();
  fleet.shown = names;
  const list = $('#fleet-list');
  $('.vlist-spacer', list).style.height = `${names.length * ROW_HEIGHT}px`;
  $('#fleet-empty').hidden = names.length > 0;
  $('#fleet-shown').textContent =
    names.length === fleet.things.size ? `${names.length} things` : `${names.length} of ${fleet.things.size} things`;
  updateCounts();
}

function updateCounts() {
  let online = 0;
  let pending = 0;
  let silent = 0;
  const now = Date.now() + fleet.skew;
  for (const t of fleet.things.values()) {
    if (t.connected) online++;
    if (t.shadow && !t.shadow.inSync) pending++;
    if (isSilent(t, now)) silent++;
  }
  const where = fleet.target === 'aws' ? 'AWS · ' : '';
  $('#counts').textContent =
    `${where}${fleet.things.size} things · ${online} connected · ${pending} pending` +
    (silent ? ` · ${silent} silent` : '');
}

/**
 * The header's throttled line: every quota breached since the core started, with its count, as
 * `GET /quotas` reports them (the console reads its own copy under /console). Hidden while none is.
 */
async function refreshQuotas() {
  const res = await fetch('/console/api/quotas', { credentials: 'same-origin' });
  if (!res.ok) return;
  const report = await res.json();
  const hit = Object.entries(report.throttled).filter(([, n]) => n > 0);
  const line = $('#quotas');
  line.hidden = hit.length === 0;
  line.textContent = hit.length === 0 ? '' : `throttled: ${hit.map(([name, n]) => `${name} ${n}`).join(' · ')}`;
  line.title = `quotas: ${report.mode}; ${report.total} throttled since start`;
}

/** One item of the metrics strip: a number in bold, what it counts, flagged when it is a failure. */
function metricItem(key, value, label, title, bad = false) {
  return el(
    'span',
    { 'data-metric': key, title, class: bad && value > 0 ? 'bad' : null },
    el('b', { text: String(value) }),
    ` ${label}`,
  );
}

/**
 * The fleet view's metrics strip, from the core's Prometheus counters in short (the full set is at
 * `GET /metrics`). Hidden where the console reports none (against an AWS account).
 */
async function refreshMetrics() {
  const res = await fetch('/console/api/metrics', { credentials: 'same-origin' });
  const strip = $('#metrics');
  if (!res.ok) {
    strip.hidden = true;
    return;
  }
  const m = await res.json();
  const lag = m.ingestLag.p50Ms === null ? '—' : `${m.ingestLag.p50Ms}/${m.ingestLag.p99Ms} ms`;
  strip.replaceChildren(
    metricItem('readingsStored', m.readingsStored, 'readings', `${m.batchesStored} batches stored since start`),
    metricItem(
      'batchesDeduplicated',
      m.batchesDeduplicated,
      'duplicates',
      'batches already stored (redeliveries), dropped',
    ),
    metricItem('poisonBatches', m.poisonBatches, 'poison', 'events that can never be stored', true),
    metricItem('storeFailures', m.storeFailures, 'store failures', 'batches the store refused after every retry', true),
    metricItem(
      'ingestLag',
      lag,
      'lag p50/p99',
      `ingest lag of ${m.ingestLag.count} stored batches, sealed → stored (estimated from the histogram's buckets)`,
    ),
    metricItem(
      'commands',
      `${m.commands.accepted}/${m.commands.rejected}/${m.commands.conflicting}`,
      'commands',
      'desired-state writes accepted / rejected (400, 413) / conflicting (409)',
    ),
    metricItem('connections', m.connections, 'connections', 'MQTT connections open now'),
    metricItem('throttled', m.throttled, 'throttled', 'quota breaches since start', true),
  );
  strip.hidden = false;
}

function queueRender() {
  if (fleet.renderQueued) return;
  fleet.renderQueued = true;
  requestAnimationFrame(() => {
    fleet.renderQueued = false;
    renderRows();
  });
}

function rowFor(name) {
  const cells = {
    name: el('span', { class: 'name' }),
    presence: el('span', { class: 'presence' }),
    seen: el('span', { class: 'seen' }),
    telemetry: el('span', { class: 'telemetry' }),
    shadow: el('span', { class: 'shadow' }),
    alerts: el('span', { class: 'alerts' }),
  };
  const row = el(
    'div',
    { class: 'row', 'data-thing': name },
    cells.name,
    cells.presence,
    cells.seen,
    cells.telemetry,
    cells.shadow,
    cells.alerts,
  );
  row.addEventListener('click', () => {
    location.hash = `#/thing/${encodeURIComponent(row.dataset.thing)}`;
  });
  row.cells = cells;
  return row;
}

/** "connected · MQTT 5", "disconnected", "never seen": a summary's presence in words. */
function presenceText(t) {
  if (t?.connected) return t.protocol ? `connected · MQTT ${t.protocol}` : 'connected';
  return t?.presenceAt ? 'disconnected' : 'never seen';
}

/**
 * Silent: heard of (connected, disconnected, a reading) longer ago than the threshold, so a device
 * that went away and one that is connected but sends nothing are both flagged; a thing never heard
 * of is "never seen" instead.
 */
function isSilent(t, now) {
  return t.lastSeen !== null && now - t.lastSeen > fleet.silentAfterMs;
}

function fillRow(row, t, now) {
  const c = row.cells;
  row.dataset.thing = t.thingName;
  row.dataset.connected = String(t.connected);
  c.name.replaceChildren(el('a', { href: `#/thing/${encodeURIComponent(t.thingName)}`, text: t.thingName }));
  c.presence.replaceChildren(el('i', { class: t.connected ? 'dot on' : 'dot' }), presenceText(t));
  c.presence.title = t.disconnectReason ?? '';
  c.seen.textContent = ago(t.lastSeen, now);
  const silent = isSilent(t, now);
  row.dataset.silent = String(silent);
  if (silent) {
    const minutes = Math.round(fleet.silentAfterMs / 60_000);
    const title = `nothing heard for more than ${minutes >= 1 ? `${minutes} min` : `${fleet.silentAfterMs / 1000} s`}`;
    c.seen.prepend(el('span', { class: 'pill silent', text: 'silent', title }), ' ');
  }
  if (t.lastTelemetry) {
    // Numbers first (temperatures say more than switch states), three at most.
    const metrics = Object.entries(t.lastTelemetry.metrics)
      .sort(([, a], [, b]) => Number(typeof a !== 'number') - Number(typeof b !== 'number'))
      .slice(0, 3)
      .map(([k, v]) => `${k} ${fmtValue(v)}`)
      .join(' · ');
    c.telemetry.textContent = `${clock(t.lastTelemetry.at)} ${metrics}`;
    c.telemetry.title = Object.entries(t.lastTelemetry.metrics)
      .map(([k, v]) => `${k} = ${fmtValue(v)}`)
      .join('\n');
  } else {
    c.telemetry.textContent = '—';
    c.telemetry.title = '';
  }
  if (t.shadow) {
    const pill = t.shadow.inSync
      ? el('span', { class: 'pill sync', text: `in sync · v${t.shadow.version}` })
      : el('span', { class: 'pill pending', text: `pending ${t.shadow.deltaKeys.join(', ')} · v${t.shadow.version}` });
    c.shadow.replaceChildren(pill);
  } else c.shadow.replaceChildren(el('span', { class: 'muted', text: 'no shadow' }));
  c.alerts.replaceChildren(t.alerts.count > 0 ? el('span', { class: 'pill alert', text: String(t.alerts.count) }) : '');
}

function renderRows() {
  const list = $('#fleet-list');
  if ($('#fleet-view').hidden) return;
  const first = Math.max(0, Math.floor(list.scrollTop / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(fleet.shown.length, Math.ceil((list.scrollTop + list.clientHeight) / ROW_HEIGHT) + OVERSCAN);
  const now = Date.now() + fleet.skew;
  const keep = new Set();
  for (let i = first; i < last; i++) {
    const name = fleet.shown[i];
    const t = fleet.things.get(name);
    if (!t) continue;
    keep.add(name);
    let row = fleet.rows.get(name);
    if (!row) {
      row = rowFor(name);
      fleet.rows.set(name, row);
      list.append(row);
    }
    row.style.transform = `translateY(${i * ROW_HEIGHT}px)`;
    fillRow(row, t, now);
  }
  for (const [name, row] of fleet.rows) {
    if (!keep.has(name)) {
      row.remove();
      fleet.rows.delete(name);
    }
  }
}

function applyThings(list) {
  let added = false;
  for (const t of list) {
    if (!fleet.things.has(t.thingName)) added = true;
    fleet.things.set(t.thingName, t);
  }
  if (added) recomputeShown();
  else updateCounts();
  queueRender();
}

const VIEWS = ['fleet-view', 'thing-view', 'jobs-view', 'job-view', 'job-new-view', 'missing-view'];

/** Shows one view and marks its tab (things or jobs) in the header. */
function showOnly(id) {
  for (const view of VIEWS) $(`#${view}`).hidden = view !== id;
  const tab = id === 'missing-view' ? null : id.startsWith('job') ? 'jobs' : 'fleet';
  for (const a of document.querySelectorAll('.views a')) a.classList.toggle('current', a.dataset.view === tab);
}

function showFleet() {
  showOnly('fleet-view');
  document.title = 'pifleet console';
  refreshMetrics().catch((err) => console.error(err));
  openStream('/console/events', {
    snapshot(data) {
      fleet.skew = data.now - Date.now();
      if (typeof data.silentAfterMs === 'number') fleet.silentAfterMs = data.silentAfterMs;
      if (data.target === 'aws' || data.target === 'local') fleet.target = data.target;
      // Jobs are the local core's service; against AWS the console has none to show.
      for (const a of document.querySelectorAll('.views a[data-view="jobs"]')) a.hidden = fleet.target === 'aws';
      $('.brand span').textContent = fleet.target === 'aws' ? 'console · AWS account' : 'local IoT Core console';
      fleet.things = new Map(data.things.map((t) => [t.thingName, t]));
      for (const row of fleet.rows.values()) row.remove();
      fleet.rows.clear();
      recomputeShown();
      queueRender();
    },
    things: applyThings,
    presence(p) {
      const t = fleet.things.get(p.thingName);
      if (t)
        applyThings([
          {
            ...t,
            connected: p.connected,
            presenceAt: p.at,
            protocol: p.protocol ?? null,
            lastSeen: Math.max(t.lastSeen ?? 0, p.at),
          },
        ]);
    },
  });
}

// ---- thing view -----------------------------------------------------------------------------

const thing = {
  name: null,
  summary: null,
  doc: null,
  history: [],
  alerts: [],
  charts: new Map(),
  chartQueued: false,
  schema: null,
  form: { dirty: false, base: null, fields: [] },
  pending: null,
};

async function loadSchema() {
  if (thing.schema) return thing.schema;
  const res = await fetch('/console/api/schema/desired', { credentials: 'same-origin' });
  if (res.ok) thing.schema = await res.json();
  return thing.schema;
}

function metaTimestamp(meta, parts) {
  const node = getAt(meta, parts);
  return isObject(node) && typeof node.timestamp === 'number' ? node.timestamp : undefined;
}

function kvTable(obj, meta, emptyText) {
  const rows = leaves(obj);
  if (rows.length === 0) return el('p', { class: 'muted', text: emptyText });
  const table = el('table', { class: 'kv' });
  for (const { parts, value } of rows) {
    const ts = meta ? metaTimestamp(meta, parts) : undefined;
    table.append(
      el(
        'tr',
        { 'data-path': formatPath(parts) },
        el('td', { class: 'k', text: formatPath(parts) }),
        el('td', { class: 'v', text: JSON.stringify(value) }),
        el('td', {
          class: 't',
          text: ts !== undefined ? clock(ts * 1000) : '',
          title: ts !== undefined ? new Date(ts * 1000).toISOString() : '',
        }),
      ),
    );
  }
  return table;
}

function renderShadow() {
  const doc = thing.doc;
  const state = doc?.state ?? {};
  const meta = doc?.metadata ?? {};
  const version = doc ? `version ${doc.version} · ${clock(doc.timestamp * 1000)}` : 'no shadow yet';
  $('#panel-desired small').textContent = version;
  $('#panel-reported small').textContent = version;
  const deltaCount = leaves(state.delta ?? {}).length;
  $('#panel-delta small').textContent = deltaCount === 0 ? 'in sync' : `${deltaCount} pending`;
  $('#panel-desired .body').replaceChildren(kvTable(state.desired, meta.desired, 'nothing desired'));
  $('#panel-reported .body').replaceChildren(kvTable(state.reported, meta.reported, 'nothing reported'));
  $('#panel-delta .body').replaceChildren(kvTable(state.delta, meta.desired, 'reported matches desired'));
  renderHealth();
}

// -- health: `reported.health`, what the agent samples of its host, its process and its connection

/** A number the device reported, or undefined (the shadow is outside input: anything may be there). */
const finite = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

function duration(s) {
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** `bad` at or past `bad`, `warn` at or past `warn` (higher is worse). */
const levelOf = (v, warn, bad) => (v === undefined ? undefined : v >= bad ? 'bad' : v >= warn ? 'warn' : undefined);

function healthTile(key, label, value, detail, level) {
  return el(
    'div',
    { class: 'tile', 'data-health': key, 'data-level': level },
    el('div', { class: 'label', text: label }),
    el('div', { class: 'value', text: value }),
    el('div', { class: 'detail', text: detail }),
  );
}

function renderHealthAge() {
  const sampledAt = finite(thing.doc?.state?.reported?.health?.sampledAt);
  const small = $('#panel-health small');
  small.textContent = sampledAt === undefined ? '' : `sampled ${ago(sampledAt, Date.now() + fleet.skew)}`;
  small.title = sampledAt === undefined ? '' : new Date(sampledAt).toISOString();
}

/**
 * The Health panel: CPU, memory, temperature, publish latency and reconnects from the shadow's
 * `reported.health`, a tile each. A value the device did not report (no thermal zone, no batch
 * acknowledged yet) shows as "—" with why. Colours: the SoC from 70 °C (a Pi 4 throttles at 80 °C,
 * a Pi 5 at 85 °C), CPU from 80 %, memory from 85 % used, a p99 latency from 1 s.
 */
function renderHealth() {
  const h = thing.doc?.state?.reported?.health;
  renderHealthAge();
  const body = $('#panel-health .body');
  if (!isObject(h)) {
    body.replaceChildren(
      el('p', {
        class: 'muted',
        text: 'No health reported yet: the agent samples it every health.intervalSeconds (60 s by default).',
      }),
    );
    return;
  }
  const host = isObject(h.host) ? h.host : {};
  const proc = isObject(h.process) ? h.process : {};
  const conn = isObject(h.connection) ? h.connection : {};
  const lat = isObject(conn.publishLatencyMs) ? conn.publishLatencyMs : {};
  const cpu = finite(host.cpuPct);
  const agentCpu = finite(proc.cpuPct);
  const load1 = finite(host.load1);
  const total = finite(host.memTotalMiB);
  const free = finite(host.memAvailableMiB);
  const rss = finite(proc.rssMiB);
  const temp = finite(host.tempC);
  const p50 = finite(lat.p50);
  const p99 = finite(lat.p99);
  const reconnects = finite(conn.reconnects);
  const connectedS = finite(conn.connectedS);
  const usedPct = total > 0 && free !== undefined ? Math.round((1 - free / total) * 100) : undefined;
  const parts = (...list) => list.filter((p) => typeof p === 'string').join(' · ');
  body.replaceChildren(
    el(
      'div',
      { class: 'health-tiles' },
      healthTile(
        'cpu',
        'CPU',
        cpu === undefined ? '—' : `${cpu} %`,
        parts(
          agentCpu !== undefined ? `agent ${agentCpu} %` : undefined,
          load1 !== undefined ? `load ${load1.toFixed(2)}` : undefined,
        ),
        levelOf(cpu, 80, 95),
      ),
      healthTile(
        'memory',
        'Memory',
        usedPct === undefined ? '—' : `${usedPct} % used`,
        parts(
          usedPct !== undefined ? `${free} of ${total} MiB free` : undefined,
          rss !== undefined ? `agent ${rss} MiB` : undefined,
        ),
        levelOf(usedPct, 85, 95),
      ),
      healthTile(
        'temperature',
        'Temperature',
        temp === undefined ? '—' : `${temp} °C`,
        temp === undefined ? 'no thermal zone reported' : 'SoC',
        levelOf(temp, 70, 80),
      ),
      healthTile(
        'latency',
        'Publish latency',
        p50 === undefined ? '—' : `${p50} ms`,
        p50 === undefined
          ? 'no batch acknowledged yet'
          : parts(
              'median',
              p99 !== undefined ? `p99 ${p99} ms` : undefined,
              finite(lat.last) !== undefined ? `last ${lat.last} ms` : undefined,
              finite(lat.samples) !== undefined ? `${lat.samples} acks` : undefined,
            ),
        levelOf(p99, 1_000, 5_000),
      ),
      healthTile(
        'reconnects',
        'Reconnects',
        reconnects === undefined ? '—' : String(reconnects),
        connectedS === undefined ? 'not connected when sampled' : `connected for ${duration(connectedS)}`,
        undefined,
      ),
    ),
  );
}

function renderSummary() {
  const s = thing.summary;
  const badge = $('#thing-presence');
  badge.className = s?.connected ? 'badge on' : 'badge';
  badge.textContent = presenceText(s);
  badge.dataset.connected = String(Boolean(s?.connected));
  $('#thing-seen').textContent = s ? `last seen ${ago(s.lastSeen, Date.now() + fleet.skew)}` : '';
  renderHealthAge();
}

/**
 * The hot readings an alert lists, in either of the rule's shapes: v1 `readings` ({sensor, ts,
 * temperature}), v2 `sensors` (a hot group: sensor, its temperatures and their offsets from t0).
 */
function hotReadings(alert) {
  if (Array.isArray(alert?.readings) && alert.readings.length > 0) {
    return alert.readings.filter((r) => typeof r?.temperature === 'number');
  }
  const hot = [];
  const threshold = typeof alert?.thresholdCelsius === 'number' ? alert.thresholdCelsius : -Infinity;
  for (const g of Array.isArray(alert?.sensors) ? alert.sensors : []) {
    const temps = Array.isArray(g?.temperatures) ? g.temperatures : [];
    temps.forEach((t, i) => {
      if (typeof t === 'number' && t > threshold) {
        const dt = Array.isArray(g.dt) && typeof g.dt[i] === 'number' ? g.dt[i] : 0;
        hot.push({ sensor: g.sensor, ts: (alert.t0 ?? 0) + dt, temperature: t });
      }
    });
  }
  return hot;
}

function renderAlerts() {
  const list = $('#alerts');
  $('#alert-count').textContent = thing.alerts.length ? `${thing.alerts.length} recent` : 'none';
  list.replaceChildren(
    ...[...thing.alerts].reverse().map(({ receivedAt, alert }) => {
      const readings = hotReadings(alert);
      const hottest = readings.reduce((m, r) => Math.max(m, r.temperature), -Infinity);
      const sensors = [...new Set(readings.map((r) => r.sensor))].join(', ');
      const text =
        readings.length > 0
          ? `${readings.length} reading(s) above ${alert.thresholdCelsius ?? '?'} °C, up to ${fmtValue(hottest)} °C (${sensors})`
          : JSON.stringify(alert);
      return el('li', {}, el('strong', { text: clock(receivedAt) }), ` ${text}`);
    }),
  );
}

// -- charts

function seriesOf(readings) {
  const series = new Map();
  for (const r of readings) {
    for (const [metric, v] of Object.entries(r.metrics)) {
      const key = `${r.sensor}.${metric}`;
      const value = typeof v === 'boolean' ? (v ? 1 : 0) : v;
      let s = series.get(key);
      if (!s) {
        s = { x: [], y: [], bool: typeof v === 'boolean' };
        series.set(key, s);
      }
      s.x.push(r.ts / 1000);
      s.y.push(value);
    }
  }
  return series;
}

function renderCharts() {
  const box = $('#charts');
  const cutoff = Date.now() + fleet.skew - CHART_WINDOW_MS;
  thing.history = thing.history.filter((r) => r.ts >= cutoff);
  const series = seriesOf(thing.history);
  if (typeof window.uPlot !== 'function') {
    box.replaceChildren(el('p', { class: 'muted', text: 'Charts unavailable (uPlot did not load).' }));
    return;
  }
  if (series.size === 0 && thing.charts.size === 0) {
    box.replaceChildren(el('p', { class: 'muted', text: 'No telemetry in the last 10 minutes.' }));
    return;
  }
  if (thing.charts.size === 0) box.replaceChildren();
  for (const [key, s] of series) {
    let chart = thing.charts.get(key);
    if (!chart) {
      const now = el('span', { class: 'now' });
      const holder = el('div', { class: 'chart', 'data-series': key }, el('h3', { text: key }, now));
      box.append(holder);
      const width = Math.max(300, holder.clientWidth || 360);
      const plot = new window.uPlot(
        {
          width,
          height: 160,
          legend: { show: false },
          scales: {
            // At least the last minute, so one or two points still make a readable axis.
            x: {
              time: true,
              range: (u) => {
                const xs = u.data[0];
                const last = xs.length ? xs[xs.length - 1] : (Date.now() + fleet.skew) / 1000;
                return [Math.min(xs.length ? xs[0] : last, last - 60), last + 1];
              },
            },
            y: s.bool
              ? { range: [-0.1, 1.1] }
              : {
                  range: (_u, min, max) => {
                    const pad = min === max ? Math.max(1, Math.abs(min) * 0.01) : (max - min) * 0.08;
                    return [min - pad, max + pad];
                  },
                },
          },
          series: [{}, { label: key, stroke: '#2f6fde', width: 1.5, points: { show: true, size: 4 } }],
          axes: [{ size: 30 }, { size: 76 }],
        },
        [s.x, s.y],
        holder,
      );
      chart = { plot, now };
      thing.charts.set(key, chart);
    } else chart.plot.setData([s.x, s.y]);
    chart.now.textContent = s.y.length ? fmtValue(s.y[s.y.length - 1]) : '';
  }
}

function queueCharts() {
  if (thing.chartQueued) return;
  thing.chartQueued = true;
  requestAnimationFrame(() => {
    thing.chartQueued = false;
    if (!$('#thing-view').hidden) renderCharts();
  });
}

// -- desired form

function effective(parts) {
  const desired = getAt(thing.doc?.state?.desired, parts);
  return desired !== undefined && desired !== null ? desired : getAt(thing.doc?.state?.reported, parts);
}

function buildForm() {
  const state = thing.doc?.state ?? {};
  const desired = state.desired ?? {};
  const reported = state.reported ?? {};
  const fieldsBox = $('#desired-form .fields');
  const fields = [];
  const groups = [];
  const ids = (key) => [...new Set([...Object.keys(reported[key] ?? {}), ...Object.keys(desired[key] ?? {})])].sort();

  const outputs = ids('outputs');
  if (outputs.length) groups.push(['Outputs', outputs.map((id) => ({ parts: ['outputs', id], kind: 'boolean' }))]);
  const sampling = ids('sampling');
  if (sampling.length)
    groups.push(['Sampling interval (ms)', sampling.map((id) => ({ parts: ['sampling', id], kind: 'integer' }))]);
  groups.push([
    'Batching',
    ['maxReadings', 'maxBytes', 'maxAgeMs'].map((k) => ({ parts: ['batch', k], kind: 'integer' })),
  ]);
  groups.push(['Logging', [{ parts: ['logLevel'], kind: 'logLevel' }]]);

  const children = [];
  for (const [title, list] of groups) {
    children.push(el('h3', { text: title }));
    for (const f of list) {
      const path = formatPath(f.parts);
      const id = `f-${path.replace(/[^\w-]/g, '_')}`;
      const value = effective(f.parts);
      let input;
      if (f.kind === 'boolean') {
        input = el('input', { type: 'checkbox', id, 'data-path': path });
        input.checked = value === true;
      } else if (f.kind === 'logLevel') {
        const levels = thing.schema?.properties?.logLevel?.enum ?? ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];
        input = el(
          'select',
          { id, 'data-path': path },
          el('option', { value: '', text: '(unchanged)' }),
          ...levels.map((l) => el('option', { value: l, text: l })),
        );
        input.value = typeof value === 'string' ? value : '';
      } else {
        input = el('input', { type: 'number', id, 'data-path': path, step: '1', inputmode: 'numeric' });
        input.value = typeof value === 'number' ? String(value) : '';
      }
      const initial = f.kind === 'boolean' ? input.checked : input.value;
      input.addEventListener('input', () => {
        thing.form.dirty = true;
        validateForm(false);
      });
      const error = el('span', { class: 'field-error', 'data-error-for': path });
      children.push(el('label', { for: id, text: path }), el('span', {}, input, error));
      fields.push({ ...f, path, input, initial });
    }
  }
  fieldsBox.replaceChildren(...children);
  thing.form = { dirty: false, base: { version: thing.doc?.version ?? null, desired: desired ?? {} }, fields };
  $('#form-base').textContent = thing.doc ? `based on version ${thing.doc.version}` : '';
}

/** The desired change the form holds: only fields the user changed. */
function formChange() {
  const change = {};
  for (const f of thing.form.fields) {
    const now = f.kind === 'boolean' ? f.input.checked : f.input.value;
    if (now === f.initial) continue;
    if (f.kind === 'boolean') setAt(change, f.parts, now);
    else if (f.kind === 'logLevel') {
      if (now !== '') setAt(change, f.parts, now);
    } else if (now.trim() !== '') setAt(change, f.parts, Number(now));
    else setAt(change, f.parts, Number.NaN);
  }
  return change;
}

function showIssues(issues) {
  for (const node of document.querySelectorAll('#desired-form [data-error-for]')) node.textContent = '';
  for (const f of thing.form.fields) f.input.classList.remove('invalid');
  const unplaced = [];
  for (const issue of issues) {
    const slot = document.querySelector(`#desired-form [data-error-for="${CSS.escape(issue.path)}"]`);
    const field = thing.form.fields.find((f) => f.path === issue.path);
    if (slot) slot.textContent = issue.message;
    else unplaced.push(`${issue.path}: ${issue.message}`);
    field?.input.classList.add('invalid');
  }
  $('#form-error').textContent = unplaced.join('; ');
  delete $('#form-error').dataset.conflict;
}

function validateForm(final) {
  const change = formChange();
  const issues = validateSchema(thing.schema, change);
  if (final && Object.keys(change).length === 0) issues.push({ path: '$', message: 'Nothing changed.' });
  showIssues(issues);
  return { change, issues };
}

function setConvergence(state, text) {
  const p = $('#convergence');
  p.dataset.state = state;
  p.textContent = text;
}

async function submitForm(event) {
  event.preventDefault();
  const { change, issues } = validateForm(true);
  if (issues.length > 0) return;
  const sentAt = Date.now();
  $('#apply').disabled = true;
  try {
    const res = await fetch(`/console/api/things/${encodeURIComponent(thing.name)}/desired`, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ desired: change, expected: thing.form.base }),
    });
    const body = await res.json().catch(() => ({}));
    if (res.status === 200) {
      thing.pending = { change, sentAt, version: body.version };
      setConvergence('pending', `Sent (version ${body.version}); waiting for ${thing.name} to report…`);
      thing.form.dirty = false;
      showIssues([]);
      checkConvergence();
      return;
    }
    if (res.status === 409) {
      showIssues([]);
      $('#form-error').textContent =
        `Conflict: ${body.message ?? 'the desired state changed meanwhile.'} The form now shows the latest state; review it and apply again.`;
      thing.form.dirty = false;
      if (thing.doc) buildForm();
      $('#form-error').dataset.conflict = 'true';
      return;
    }
    if (res.status === 400 && Array.isArray(body.issues) && body.issues.length) {
      showIssues(body.issues);
      return;
    }
    $('#form-error').textContent = body.message ?? `The change was refused (HTTP ${res.status}).`;
  } catch (err) {
    $('#form-error').textContent = `Not sent: ${err.message}`;
  } finally {
    $('#apply').disabled = false;
  }
}

function checkConvergence() {
  const pending = thing.pending;
  if (!pending || !thing.doc) return;
  const reported = thing.doc.state?.reported ?? {};
  const rejected = isObject(reported.rejected) ? reported.rejected : {};
  const wanted = leaves(pending.change);
  const refused = wanted.filter((w) => rejected[formatPath(w.parts)]);
  if (refused.length > 0) {
    const r = refused[0];
    thing.pending = null;
    setConvergence(
      'rejected',
      `${thing.name} rejected ${formatPath(r.parts)}: ${rejected[formatPath(r.parts)].reason}`,
    );
    return;
  }
  if (wanted.every((w) => jsonEqual(getAt(reported, w.parts), w.value))) {
    const stamps = wanted
      .map((w) => metaTimestamp(thing.doc.metadata?.reported, w.parts))
      .filter((t) => t !== undefined);
    const reportedAt = stamps.length ? Math.max(...stamps) : undefined;
    const ms = Date.now() - pending.sentAt;
    thing.pending = null;
    setConvergence(
      'converged',
      `Converged: ${thing.name} reported the new state at ${reportedAt ? clock(reportedAt * 1000) : clockMs(Date.now())} ` +
        `(shadow version ${thing.doc.version}), ${ms} ms after Apply.`,
    );
  }
}

function onShadowDocument(doc) {
  thing.doc = doc;
  renderShadow();
  if (!thing.form.dirty) buildForm();
  checkConvergence();
}

async function showThing(name) {
  showOnly('thing-view');
  document.title = `${name} · pifleet console`;
  $('#thing-name').textContent = name;
  for (const c of thing.charts.values()) c.plot.destroy();
  Object.assign(thing, {
    name,
    summary: null,
    doc: null,
    history: [],
    alerts: [],
    charts: new Map(),
    pending: null,
    form: { dirty: false, base: null, fields: [] },
  });
  $('#charts').replaceChildren();
  $('#form-error').textContent = '';
  setConvergence('idle', '');
  await loadSchema().catch(() => null);
  openStream(`/console/events?thing=${encodeURIComponent(name)}`, {
    detail(d) {
      fleet.skew = d.now - Date.now();
      thing.summary = d.summary ?? null;
      thing.history = d.history;
      thing.alerts = d.alerts;
      for (const c of thing.charts.values()) c.plot.destroy();
      thing.charts = new Map();
      $('#charts').replaceChildren();
      renderSummary();
      renderAlerts();
      onShadowDocument(d.shadow);
      queueCharts();
    },
    summary(s) {
      thing.summary = s;
      renderSummary();
    },
    presence(p) {
      if (thing.summary) {
        thing.summary = {
          ...thing.summary,
          connected: p.connected,
          presenceAt: p.at,
          protocol: p.protocol ?? null,
          lastSeen: p.at,
        };
      }
      renderSummary();
    },
    telemetry(t) {
      thing.history.push(...t.readings);
      thing.history.sort((a, b) => a.ts - b.ts);
      queueCharts();
    },
    shadow(s) {
      onShadowDocument(s.document);
    },
    alert(a) {
      thing.alerts.push(a.alert);
      if (thing.alerts.length > 50) thing.alerts.shift();
      renderAlerts();
    },
  });
}

// ---- jobs -----------------------------------------------------------------------------------
// The jobs list (#/jobs), one job's progress (#/job/ID) and the new-job form (#/jobs/new). Live
// data comes from /console/events/jobs (the list) and /console/events/jobs?job=ID (one job); the
// server sends only what changed and starts each stream with the whole picture.

const JOB_STATUSES = ['QUEUED', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'REJECTED', 'TIMED_OUT', 'REMOVED', 'CANCELED'];
const TERMINAL = new Set(['SUCCEEDED', 'FAILED', 'REJECTED', 'TIMED_OUT', 'REMOVED', 'CANCELED']);
const JOB_TYPES = { 'pifleet.agent-update': 'agent-update', 'pifleet.config': 'config', 'pifleet.reboot': 'reboot' };

const jobTypeText = (operation) => JOB_TYPES[operation] ?? operation ?? '—';
const statusText = (status) => status.toLowerCase().replace(/_/g, ' ');

const jobs = {
  list: [],
  id: null,
  job: null,
  filter: '',
  /** The manifest's exact bytes when picked from a file (pasted text is encoded as UTF-8). */
  manifestBytes: null,
};

function statusPill(status, forced) {
  return el('span', {
    class: 'pill status',
    'data-status': status,
    text: statusText(status) + (forced ? ' (forced)' : ''),
  });
}

/** A bar of the executions by status, each segment as wide as its count. */
function countsBar(counts) {
  const bar = el('span', { class: 'bar' });
  for (const s of JOB_STATUSES) {
    const n = counts[s] ?? 0;
    if (n === 0) continue;
    const seg = el('i', { 'data-status': s, title: `${statusText(s)}: ${n}` });
    seg.style.flexGrow = String(n);
    bar.append(seg);
  }
  return bar;
}

function countsText(counts) {
  const parts = JOB_STATUSES.filter((s) => (counts[s] ?? 0) > 0).map((s) => `${counts[s]} ${statusText(s)}`);
  return parts.length ? parts.join(' · ') : 'no executions';
}

function renderJobs() {
  const now = Date.now() + fleet.skew;
  $('#jobs-empty').hidden = jobs.list.length > 0;
  $('#jobs-shown').textContent = `${jobs.list.length} job${jobs.list.length === 1 ? '' : 's'}, newest first`;
  $('#jobs-list').replaceChildren(
    ...jobs.list.map((j) => {
      const href = `#/job/${encodeURIComponent(j.jobId)}`;
      const row = el(
        'tr',
        { 'data-job': j.jobId, 'data-status': j.status },
        el('td', {}, el('a', { href, text: j.jobId })),
        el('td', { text: jobTypeText(j.operation) }),
        el('td', {}, statusPill(j.status, j.forceCanceled)),
        el('td', { text: ago(j.createdAt, now), title: new Date(j.createdAt).toLocaleString() }),
        el(
          'td',
          { class: 'counts-cell' },
          countsBar(j.counts),
          el('span', { class: 'muted', text: countsText(j.counts) }),
        ),
      );
      row.addEventListener('click', () => {
        location.hash = href;
      });
      return row;
    }),
  );
}

function showJobs() {
  showOnly('jobs-view');
  document.title = 'Jobs · pifleet console';
  openStream('/console/events/jobs', {
    jobs(d) {
      fleet.skew = d.now - Date.now();
      jobs.list = d.jobs;
      renderJobs();
    },
  });
}

// -- one job

/** `arn:…:thing/pi-01` → `thing pi-01`, `arn:…:thinggroup/site` → `group site`. */
function targetText(arn) {
  const m = /:(thing|thinggroup)\/(.+)$/.exec(arn);
  if (!m) return arn;
  return m[1] === 'thing' ? `thing ${m[2]}` : `group ${m[2]}`;
}

function configRows(j) {
  const rows = [
    ['targets', j.targets.map(targetText).join(', ')],
    ['target selection', j.targetSelection],
    [
      'rollout',
      j.rollout?.exponentialRate
        ? `exponential from ${j.rollout.exponentialRate.baseRatePerMinute}/min ×${j.rollout.exponentialRate.incrementFactor}`
        : `${j.rollout?.maximumPerMinute ?? 1000} per minute${j.rollout?.maximumPerMinute ? '' : " (IoT's default)"}`,
    ],
    [
      'abort',
      j.abort?.length
        ? j.abort
            .map(
              (c) =>
                `cancel when ${c.thresholdPercentage} % of executed things ${c.failureType === 'ALL' ? 'failed, were rejected or timed out' : statusText(c.failureType)} (after ${c.minNumberOfExecutedThings})`,
            )
            .join('; ')
        : 'never',
    ],
    ['in-progress timeout', j.inProgressTimeoutInMinutes ? `${j.inProgressTimeoutInMinutes} min` : 'none'],
    [
      'retries',
      j.retry?.length ? j.retry.map((r) => `${r.numberOfRetries} × ${statusText(r.failureType)}`).join(', ') : 'none',
    ],
  ];
  if (j.description) rows.push(['description', j.description]);
  if (j.comment || j.reasonCode) rows.push(['cancel note', [j.reasonCode, j.comment].filter(Boolean).join(': ')]);
  rows.push(['arn', j.jobArn]);
  return el(
    'table',
    { class: 'kv' },
    ...rows.map(([k, v]) => el('tr', { 'data-key': k }, el('td', { class: 'k', text: k }), el('td', { text: v }))),
  );
}

function detailsText(details) {
  if (!details) return '';
  return Object.entries(details)
    .map(([k, v]) => `${k}: ${v}`)
    .join(' · ');
}

function renderJob() {
  const j = jobs.job;
  if (!j) return;
  const now = Date.now() + fleet.skew;
  const badge = $('#job-status');
  badge.className = 'badge status';
  badge.dataset.status = j.status;
  badge.textContent = statusText(j.status) + (j.forceCanceled ? ' (forced)' : '');
  $('#job-type').textContent = `${jobTypeText(j.operation)} · created ${ago(j.createdAt, now)}`;

  const total = JOB_STATUSES.reduce((n, s) => n + (j.counts[s] ?? 0), 0);
  const finished = JOB_STATUSES.filter((s) => TERMINAL.has(s)).reduce((n, s) => n + (j.counts[s] ?? 0), 0);
  $('#job-progress-note').textContent = `${finished} of ${total} finished${j.isConcurrent ? ' · rolling out' : ''}`;
  $('#job-bar').replaceChildren(countsBar(j.counts));
  $('#job-counts').replaceChildren(
    ...JOB_STATUSES.map((s) =>
      el(
        'li',
        { 'data-status': s, 'data-count': String(j.counts[s] ?? 0) },
        el('i', { class: 'swatch', 'data-status': s }),
        `${statusText(s)} `,
        el('strong', { text: String(j.counts[s] ?? 0) }),
      ),
    ),
  );
  $('#job-config').replaceChildren(configRows(j));
  let doc = j.document;
  try {
    doc = JSON.stringify(JSON.parse(j.document), null, 2);
  } catch {
    // shown as stored
  }
  $('#job-document').textContent = doc;

  const cancelable = j.status === 'IN_PROGRESS' || (j.status === 'CANCELED' && !j.forceCanceled);
  $('#cancel-job').disabled = !cancelable;
  $('#cancel-job').textContent = j.status === 'CANCELED' ? 'Force cancel' : 'Cancel job';
  if (j.status === 'CANCELED' && !j.forceCanceled) $('#cancel-force').checked = true;
  $('#cancel-note').textContent = cancelable ? '' : `The job is ${statusText(j.status)}.`;

  const select = $('#exec-filter');
  const present = JOB_STATUSES.filter((s) => (j.counts[s] ?? 0) > 0);
  select.replaceChildren(
    el('option', { value: '', text: `All statuses (${total})` }),
    ...present.map((s) => el('option', { value: s, text: `${statusText(s)} (${j.counts[s]})` })),
  );
  select.value = present.includes(jobs.filter) ? jobs.filter : '';
  const order = (s) => JOB_STATUSES.indexOf(s);
  const shown = j.executions
    .filter((e) => !select.value || e.status === select.value)
    .sort((a, b) => order(a.status) - order(b.status) || (a.thingName < b.thingName ? -1 : 1));
  $('#job-exec-note').textContent = j.executionsTruncated
    ? `the first ${j.executions.length} of ${total}`
    : `${j.executions.length}`;
  $('#exec-list').replaceChildren(
    ...shown.map((e) =>
      el(
        'tr',
        { 'data-thing': e.thingName, 'data-status': e.status },
        el('td', {}, el('a', { href: `#/thing/${encodeURIComponent(e.thingName)}`, text: e.thingName })),
        el(
          'td',
          {},
          statusPill(e.status),
          e.notified || e.status !== 'QUEUED' ? '' : el('span', { class: 'muted', text: ' waiting for rollout' }),
        ),
        el('td', { class: 'details', text: detailsText(e.statusDetails) }),
        el('td', { text: ago(e.lastUpdatedAt, now), title: new Date(e.lastUpdatedAt).toLocaleString() }),
        el('td', { text: `v${e.versionNumber}${e.executionNumber > 1 ? ` · run ${e.executionNumber}` : ''}` }),
      ),
    ),
  );
}

function showJob(id) {
  showOnly('job-view');
  document.title = `${id} · jobs · pifleet console`;
  $('#job-id').textContent = id;
  Object.assign(jobs, { id, job: null, filter: '' });
  for (const node of [
    '#job-status',
    '#job-type',
    '#job-progress-note',
    '#job-exec-note',
    '#cancel-error',
    '#cancel-note',
  ]) {
    $(node).textContent = '';
  }
  for (const node of ['#job-bar', '#job-counts', '#job-config', '#exec-list']) $(node).replaceChildren();
  $('#job-document').textContent = '';
  $('#cancel-force').checked = false;
  $('#cancel-comment').value = '';
  openStream(`/console/events/jobs?job=${encodeURIComponent(id)}`, {
    job(d) {
      fleet.skew = d.now - Date.now();
      jobs.job = d.job;
      renderJob();
    },
    gone(d) {
      jobs.job = null;
      $('#job-status').textContent = 'not found';
      $('#job-status').dataset.status = 'GONE';
      $('#job-exec-note').textContent = d.message;
      $('#cancel-job').disabled = true;
    },
  });
}

async function submitCancel(event) {
  event.preventDefault();
  if (!jobs.job) return;
  const force = $('#cancel-force').checked;
  const comment = $('#cancel-comment').value.trim();
  $('#cancel-error').textContent = '';
  $('#cancel-job').disabled = true;
  try {
    const res = await fetch(`/console/api/jobs/${encodeURIComponent(jobs.id)}/cancel`, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ force, ...(comment ? { comment } : {}) }),
    });
    const body = await res.json().catch(() => ({}));
    if (res.ok) {
      $('#cancel-note').textContent = force
        ? 'Canceled, executions in progress included.'
        : 'Canceled: queued executions stop; those in progress finish.';
      return;
    }
    $('#cancel-error').textContent = body.message ?? `The cancel was refused (HTTP ${res.status}).`;
  } catch (err) {
    $('#cancel-error').textContent = `Not sent: ${err.message}`;
  } finally {
    if (jobs.job) renderJob();
  }
}

// -- new job

function applyJobType() {
  const type = $('#jf-type').value;
  for (const node of document.querySelectorAll('#job-form [data-types]')) {
    node.hidden = !node.dataset.types.split(' ').includes(type);
  }
}

function showNewJob() {
  showOnly('job-new-view');
  document.title = 'New job · pifleet console';
  applyJobType();
  showJobIssues([], '');
  // The jobs list stream keeps the header's live indicator true while the form is open.
  openStream('/console/events/jobs', {
    jobs(d) {
      jobs.list = d.jobs;
    },
  });
}

const rootField = (path) => /^[^.[]*/.exec(path)[0] || '$';

function showJobIssues(issues, message) {
  for (const node of document.querySelectorAll('#job-form [data-error-for]')) node.textContent = '';
  for (const node of document.querySelectorAll('#job-form .invalid')) node.classList.remove('invalid');
  const unplaced = [];
  for (const issue of issues) {
    const field = rootField(issue.path);
    const slot = document.querySelector(`#job-form [data-error-for="${CSS.escape(field)}"]`);
    const input = document.querySelector(`#job-form [data-field="${CSS.escape(field)}"]`);
    if (slot && !slot.closest('[hidden]')) {
      const text = issue.path === field ? issue.message : `${issue.path}: ${issue.message}`;
      slot.textContent = slot.textContent ? `${slot.textContent}; ${text}` : text;
      input?.classList.add('invalid');
    } else unplaced.push(`${issue.path}: ${issue.message}`);
  }
  $('#job-form-error').textContent = unplaced.length ? unplaced.join('; ') : message;
}

function bytesToBase64(bytes) {
  let text = '';
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text);
}

/** Fills the version field from a manifest's text when it parses (the server checks it again). */
function versionFromManifest(text) {
  try {
    const m = JSON.parse(text);
    if (typeof m?.version === 'string') $('#jf-version').value = m.version;
  } catch {
    // not (yet) JSON: the server says what is wrong on Create
  }
}

/** The request the form describes, and the problems found before sending anything. */
function jobRequest() {
  const type = $('#jf-type').value;
  const value = (id) => $(id).value.trim();
  const issues = [];
  const body = { type };
  const text = (field, id) => {
    if (value(id) !== '') body[field] = value(id);
  };
  const number = (field, id) => {
    if (value(id) === '') return;
    const n = Number(value(id));
    if (!Number.isFinite(n)) issues.push({ path: field, message: 'must be a number' });
    else body[field] = n;
  };
  text('jobId', '#jf-jobId');
  text('description', '#jf-description');
  const things = value('#jf-things')
    .split(/[\s,]+/)
    .filter((t) => t !== '');
  if (things.length) body.things = things;
  text('group', '#jf-group');
  if (!body.things && !body.group)
    issues.push({ path: 'things', message: 'name at least one thing, or a thing group' });
  number('rolloutPerMinute', '#jf-rollout');
  number('abortFailurePercent', '#jf-abort');
  number('abortMinExecuted', '#jf-abort-min');
  text('reason', '#jf-reason');
  if (type === 'config') {
    const config = $('#jf-config').value;
    if (config.trim() === '') issues.push({ path: 'config', message: 'is required: a JSON object of settings' });
    else {
      try {
        JSON.parse(config);
      } catch (err) {
        issues.push({ path: 'config', message: `is not valid JSON: ${err.message}` });
      }
      // Sent as the text typed: the server parses it with its own depth bound and names what is wrong.
      body.config = config;
    }
  } else if (type === 'agent-update') {
    const manifest = $('#jf-manifest').value;
    if (jobs.manifestBytes) body.manifest = bytesToBase64(jobs.manifestBytes);
    else if (manifest.trim() !== '') body.manifest = bytesToBase64(new TextEncoder().encode(manifest));
    else issues.push({ path: 'manifest', message: 'is required: pick or paste the release manifest' });
    if (value('#jf-signature') === '')
      issues.push({ path: 'signature', message: 'is required: pick the .sig file or paste it as base64' });
    else body.signature = value('#jf-signature');
    text('version', '#jf-version');
    if (value('#jf-url') === '') issues.push({ path: 'url', message: 'is required' });
    else body.url = value('#jf-url');
  }
  return { body, issues };
}

async function submitJob(event) {
  event.preventDefault();
  const { body, issues } = jobRequest();
  if (issues.length) {
    showJobIssues(issues, 'Not sent: fix the fields marked below.');
    return;
  }
  showJobIssues([], '');
  $('#create-job').disabled = true;
  try {
    const res = await fetch('/console/api/jobs', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const reply = await res.json().catch(() => ({}));
    if (res.ok) {
      // The next job needs an id of its own; targets and settings stay for a similar one.
      $('#jf-jobId').value = '';
      location.hash = `#/job/${encodeURIComponent(reply.jobId)}`;
      return;
    }
    if (res.status === 400 && Array.isArray(reply.issues) && reply.issues.length) {
      showJobIssues(reply.issues, 'The job was not created: fix the fields marked below.');
      return;
    }
    showJobIssues([], reply.message ?? `The job was not created (HTTP ${res.status}).`);
  } catch (err) {
    showJobIssues([], `Not sent: ${err.message}`);
  } finally {
    $('#create-job').disabled = false;
  }
}

function initJobs() {
  $('#jf-type').addEventListener('change', () => {
    applyJobType();
    showJobIssues([], '');
  });
  $('#job-form').addEventListener('submit', (e) => {
    submitJob(e).catch((err) => console.error(err));
  });
  $('#cancel-form').addEventListener('submit', (e) => {
    submitCancel(e).catch((err) => console.error(err));
  });
  $('#exec-filter').addEventListener('change', (e) => {
    jobs.filter = e.target.value;
    renderJob();
  });
  $('#jf-manifest').addEventListener('input', (e) => {
    jobs.manifestBytes = null;
    versionFromManifest(e.target.value);
  });
  $('#jf-manifest-file').addEventListener('change', async (e) => {
    const file = e.target.files?.[0];
    if (!file) return;
    jobs.manifestBytes = new Uint8Array(await file.arrayBuffer());
    $('#jf-manifest').value = new TextDecoder().decode(jobs.manifestBytes);
    versionFromManifest($('#jf-manifest').value);
  });
  $('#jf-signature-file').addEventListener('change', async (e) => {
    const file = e.target.files?.[0];
    if (!file) return;
    $('#jf-signature').value = bytesToBase64(new Uint8Array(await file.arrayBuffer()));
  });
}

// ---- router ---------------------------------------------------------------------------------

/** A name from the address, or null when it is not percent-encoded UTF-8 (`#/job/%E0`). */
function addressName(encoded) {
  try {
    return decodeURIComponent(encoded);
  } catch {
    // decodeURIComponent throws URIError; uncaught in the hashchange handler it left the page on
    // the previous view (and a first load on an empty fleet view with no stream).
    return null;
  }
}

/** The view for an address that names nothing the console can show. */
function showMissing(hash) {
  if (source) source.close();
  source = null;
  $('#stream').dataset.state = 'idle';
  $('#stream').textContent = '';
  showOnly('missing-view');
  document.title = 'not found · pifleet console';
  $('#missing-address').textContent = hash;
}

function route() {
  const hash = location.hash;
  const thingMatch = /^#\/thing\/(.+)$/.exec(hash);
  const jobMatch = /^#\/job\/(.+)$/.exec(hash);
  const name = addressName((thingMatch ?? jobMatch)?.[1] ?? '');
  if ((thingMatch || jobMatch) && name === null) {
    showMissing(hash);
  } else if (thingMatch) {
    showThing(name).catch((err) => console.error(err));
  } else if (hash === '#/jobs/new') {
    showNewJob();
  } else if (jobMatch) {
    showJob(name);
  } else if (hash === '#/jobs') {
    showJobs();
  } else {
    showFleet();
    queueRender();
  }
}

function init() {
  $('#fleet-list').addEventListener('scroll', queueRender, { passive: true });
  window.addEventListener('resize', queueRender);
  $('#filter').addEventListener('input', (e) => {
    fleet.filter = e.target.value;
    $('#fleet-list').scrollTop = 0;
    recomputeShown();
    queueRender();
  });
  $('#desired-form').addEventListener('submit', (e) => {
    submitForm(e).catch((err) => console.error(err));
  });
  $('#reset').addEventListener('click', () => {
    thing.form.dirty = false;
    buildForm();
    showIssues([]);
  });
  initJobs();
  window.addEventListener('hashchange', route);
  // Relative times ("12 s ago") age on screen; this only redraws, it fetches nothing.
  setInterval(() => {
    if (!$('#fleet-view').hidden) {
      queueRender();
      updateCounts();
    } else if (!$('#jobs-view').hidden) renderJobs();
    else if (!$('#thing-view').hidden) renderSummary();
  }, 1000);
  // Throttle counts change only under load; every 5 s is enough and costs one small request.
  const quotas = () => {
    refreshQuotas().catch((err) => console.error(err));
  };
  quotas();
  setInterval(quotas, 5000);
  // The metrics strip only while the fleet view is open: one small request every 5 s.
  setInterval(() => {
    if (!$('#fleet-view').hidden) refreshMetrics().catch((err) => console.error(err));
  }, 5000);
  route();
}

init();
