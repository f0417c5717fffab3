// @ts-check
/**
 * The Pagewise portal page: signs in (a `#login=` token or the token form locally, Microsoft Entra in Azure),
 * then shows the vault's disks and VMs, the operations with live progress, a throughput chart and the last
 * failures, and offers the starts the signed-in roles allow. Everything it shows comes from the public API;
 * it writes text only (textContent), never markup.
 */
import { ApiError, getJson, postJson } from './api.js';
import { drawThroughput } from './chart.js';
import { formatAge, formatBytes, formatThroughput, percent } from './format.js';

/** Polls while something runs, rarely when idle. */
const POLL_RUNNING_MS = 1000;
const POLL_IDLE_MS = 10000;
const MAX_SAMPLES = 300;
const MiB = 1024 * 1024;

/** @typedef {{ name: string, roles: string[], via: string }} Me */
/** @typedef {{ signIn: 'token' | 'entra', entraLogin: string }} PortalConfig */
/** @typedef {import('./chart.js').Sample} Sample */

/** @type {Me | null} */
let me = null;
/** @type {PortalConfig} */
let config = { signIn: 'token', entraLogin: '/.auth/login/aad' };
/** Per running instance: its last bytes done, and the throughput samples taken from them. */
/** @type {Map<string, { at: number, bytes: number }>} */
const lastSeen = new Map();
/** @type {Map<string, Sample[]>} */
const samples = new Map();
/** The instance the chart shows: the newest backup seen running. */
let charted = '';
/** @type {ReturnType<typeof setTimeout> | undefined} */
let pollTimer;
/** Until when polls stay fast after this page started something (a short operation may end before a poll sees it run). */
let fastUntil = 0;
const FAST_AFTER_START_MS = 15000;
/** A backup restored from the dialog. */
let restoreBackupId = '';

/**
 * @template {HTMLElement} T
 * @param {string} id
 * @returns {T}
 */
function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return /** @type {T} */ (el);
}

/**
 * An element with text or children; attributes set as attributes (never markup).
 * @param {string} tag
 * @param {Record<string, string>} [attrs]
 * @param {Array<Node | string>} [children]
 */
function el(tag, attrs = {}, children = []) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

/** @param {string} text */
function say(text) {
  byId('message').textContent = text;
}

/** Admin holds every role; operator and restorer hold reader's. @param {string} role */
function can(role) {
  if (!me) return false;
  const roles = me.roles;
  return roles.includes(role) || roles.includes('admin') || (role === 'reader' && (roles.includes('operator') || roles.includes('restorer')));
}

/**
 * The roles worth naming: those no other held role implies (admin holds all; operator and restorer hold reader).
 * @param {string[]} roles
 */
function shownRoles(roles) {
  if (roles.includes('admin')) return ['admin'];
  return roles.filter((r) => r !== 'reader' || !(roles.includes('operator') || roles.includes('restorer')));
}

/** The `#login=<token>` of a sign-in link, removed from the address bar (and history) at once. */
function takeLoginToken() {
  const match = /^#login=([A-Za-z0-9_-]{1,200})$/.exec(location.hash);
  if (location.hash.startsWith('#login=')) history.replaceState(null, '', location.pathname + location.search);
  return match ? match[1] : undefined;
}

/** @param {string} token */
async function signIn(token) {
  try {
    await postJson('/.auth/login', { token });
    return true;
  } catch (err) {
    const used = err instanceof ApiError && (err.status === 401 || err.status === 403);
    byId('sign-in-error').textContent = used ? 'This sign-in token is not valid (a sign-in link works once). Ask for a new one.' : `Sign-in failed: ${message(err)}`;
    return false;
  }
}

/** @param {unknown} err */
function message(err) {
  return err instanceof Error ? err.message : String(err);
}

async function showSession() {
  byId('loading').hidden = true;
  try {
    me = /** @type {Me} */ (await getJson('/api/me'));
  } catch (err) {
    me = null;
    if (!(err instanceof ApiError && err.status === 401)) say(`Could not read who is signed in: ${message(err)}`);
  }
  if (!me) return showSignIn();
  byId('sign-in').hidden = true;
  byId('who').hidden = false;
  byId('who-name').textContent = me.name;
  byId('who-roles').textContent = shownRoles(me.roles).join(', ') || 'no role';
  for (const section of document.querySelectorAll('[data-role]')) {
    /** @type {HTMLElement} */ (section).hidden = !can(/** @type {HTMLElement} */ (section).dataset.role ?? 'admin');
  }
  byId('dashboard').hidden = false;
  await refresh();
}

function showSignIn() {
  clearTimeout(pollTimer);
  byId('dashboard').hidden = true;
  byId('who').hidden = true;
  byId('sign-in').hidden = false;
  const entra = config.signIn === 'entra';
  byId('token-form').hidden = entra;
  byId('entra-sign-in').hidden = !entra;
  /** @type {HTMLAnchorElement} */ (byId('entra-link')).href = `${config.entraLogin}?post_login_redirect_uri=${encodeURIComponent(location.pathname)}`;
  (entra ? byId('entra-link') : byId('token')).focus();
}

/** Reloads every list; polls again soon while an operation runs. */
async function refresh() {
  clearTimeout(pollTimer);
  const results = await Promise.allSettled([loadOperations(), loadBackups(), loadVmBackups(), loadFailures()]);
  if (results.some((r) => r.status === 'rejected' && r.reason instanceof ApiError && r.reason.status === 401)) {
    me = null;
    say('Your session ended; sign in again.');
    return showSignIn();
  }
  const running = results[0].status === 'fulfilled' && results[0].value;
  pollTimer = setTimeout(() => void refresh(), running || Date.now() < fastUntil ? POLL_RUNNING_MS : POLL_IDLE_MS);
}

/**
 * Runs a section's load; its failure is shown in the section (the others still render).
 * @template T
 * @param {string} errorId
 * @param {() => Promise<T>} load
 * @returns {Promise<T>}
 */
async function section(errorId, load) {
  try {
    const value = await load();
    byId(errorId).textContent = '';
    return value;
  } catch (err) {
    byId(errorId).textContent = `Could not load: ${message(err)}`;
    throw err;
  }
}

/**
 * @param {HTMLTableElement} table
 * @param {HTMLElement[]} rows
 * @param {string} empty
 */
function fillTable(table, rows, empty) {
  const body = table.tBodies[0];
  const columns = table.tHead?.rows[0].cells.length ?? 1;
  body.replaceChildren(...(rows.length ? rows : [el('tr', {}, [el('td', { colspan: String(columns), class: 'empty' }, [empty])])]));
}

/**
 * Progress of an operation's custom status: done and total in its own unit, and bytes.
 * @param {any} op
 */
function progressOf(op) {
  const s = op.customStatus && typeof op.customStatus === 'object' ? op.customStatus : {};
  if (Array.isArray(s.disks)) {
    // A VM backup: the sum over its disks.
    const sum = (/** @type {string} */ k) => s.disks.reduce((/** @type {number} */ n, /** @type {any} */ d) => n + (typeof d[k] === 'number' ? d[k] : 0), 0);
    return { units: `${s.disks.filter((/** @type {any} */ d) => d.state === 'done').length} of ${s.disks.length} disks`, bytesDone: sum('bytesDone'), bytesTotal: sum('bytesTotal') };
  }
  const unit = typeof s.batchesTotal === 'number' ? 'batches' : typeof s.windowsTotal === 'number' ? 'windows' : undefined;
  return {
    units: unit ? `${s[`${unit}Done`]} of ${s[`${unit}Total`]}` : '—',
    bytesDone: typeof s.bytesDone === 'number' ? s.bytesDone : 0,
    bytesTotal: typeof s.bytesTotal === 'number' ? s.bytesTotal : 0,
  };
}

const KIND_NAMES = /** @type {Record<string, string>} */ ({ backups: 'Backup', 'vm-backups': 'VM backup', restores: 'Restore', verifications: 'Verification', prunes: 'Prune' });

/** The operations running at the last poll: one that ended since changes the lists, which are then read again soon. */
/** @type {Set<string>} */
let runningBefore = new Set();

/** @returns {Promise<boolean>} whether an operation runs, or one ended since the last poll */
async function loadOperations() {
  const { operations } = await section('operations-error', () => getJson('/api/operations?status=all&top=25'));
  const now = Date.now();
  let anyRunning = false;
  const runningNow = new Set(operations.filter((/** @type {any} */ op) => op.runtimeStatus === 'Running' || op.runtimeStatus === 'Pending').map((/** @type {any} */ op) => String(op.instanceId)));
  const justEnded = [...runningBefore].some((id) => !runningNow.has(id));
  runningBefore = runningNow;
  const rows = operations.map((/** @type {any} */ op) => {
    const running = op.runtimeStatus === 'Running' || op.runtimeStatus === 'Pending';
    anyRunning ||= running;
    const p = progressOf(op);
    const pct = op.runtimeStatus === 'Completed' ? 100 : percent(p.bytesDone, p.bytesTotal);
    const throughput = running || lastSeen.has(op.instanceId) ? sample(op, p.bytesDone, now) : averageOf(op, p.bytesDone);
    if (!running) lastSeen.delete(op.instanceId); // its last sample taken: the bytes it ended with
    const bar = el('progress', { max: '100', value: String(pct), 'aria-label': `${KIND_NAMES[op.kind] ?? op.kind} ${op.id} progress` });
    return el('tr', { 'data-instance': op.instanceId }, [
      el('td', {}, [KIND_NAMES[op.kind] ?? op.kind]),
      el('td', { class: 'id' }, [op.id]),
      el('td', { class: `status-${op.runtimeStatus}` }, [op.runtimeStatus + (op.customStatus?.phase && running ? ` (${op.customStatus.phase})` : '')]),
      el('td', { class: 'num nowrap' }, [bar, ` ${pct}\u00a0%`]),
      el('td', { class: 'num' }, [p.units]),
      el('td', { class: 'num' }, [p.bytesTotal ? `${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)}` : '—']),
      el('td', { class: 'num' }, [throughput === undefined ? '—' : `${running ? '' : 'avg '}${formatThroughput(throughput)}`]),
      el('td', {}, [formatAge(op.createdTime, now)]),
    ]);
  });
  fillTable(/** @type {HTMLTableElement} */ (byId('operations')), rows, 'No operations.');
  const shown = samples.get(charted) ?? [];
  const chart = /** @type {SVGSVGElement} */ (/** @type {unknown} */ (byId('chart')));
  drawThroughput(chart, shown, charted ? `Backup ${charted.replace(/^backup-/, '')}` : '');
  if (shown.length >= 2) byId('chart-caption').textContent = chart.querySelector('desc')?.textContent ?? '';
  return anyRunning || justEnded;
}

/**
 * A finished operation's average throughput: its bytes over its run time (undefined when either is unknown).
 * @param {any} op
 * @param {number} bytes
 */
function averageOf(op, bytes) {
  const seconds = (new Date(op.lastUpdatedTime).getTime() - new Date(op.createdTime).getTime()) / 1000;
  return op.runtimeStatus === 'Completed' && bytes > 0 && seconds > 0 ? bytes / MiB / seconds : undefined;
}

/**
 * Takes a throughput sample of a running backup from its bytes done since the last poll.
 * @param {any} op
 * @param {number} bytes
 * @param {number} now
 * @returns {number | undefined} MiB/s since the last poll
 */
function sample(op, bytes, now) {
  const before = lastSeen.get(op.instanceId);
  lastSeen.set(op.instanceId, { at: now, bytes });
  if (op.kind === 'backups' || op.kind === 'vm-backups') {
    if (!samples.has(op.instanceId)) {
      samples.set(op.instanceId, [{ at: now, mibps: 0 }]);
      charted = op.instanceId;
    }
  }
  if (!before || now <= before.at) return undefined;
  const mibps = Math.max(0, (bytes - before.bytes) / MiB / ((now - before.at) / 1000));
  const list = samples.get(op.instanceId);
  if (list) {
    list.push({ at: now, mibps });
    if (list.length > MAX_SAMPLES) list.shift();
  }
  return mibps;
}

/** @param {any} lastVerified */
function verifiedText(lastVerified) {
  if (!lastVerified || typeof lastVerified !== 'object' || typeof lastVerified.at !== 'string') return { text: 'never', cls: '' };
  const by = typeof lastVerified.by === 'string' ? ` (${lastVerified.by})` : '';
  const why = Array.isArray(lastVerified.problems) && typeof lastVerified.problems[0] === 'string' ? `: ${lastVerified.problems[0]}` : '';
  return lastVerified.ok === false ? { text: `FAILED ${formatAge(lastVerified.at)}${by}${why}`, cls: 'verified-failed' } : { text: `ok, ${formatAge(lastVerified.at)}${by}`, cls: 'verified-ok' };
}

async function loadBackups() {
  const { backups, disks } = await section('disks-error', () => getJson('/api/backups?groupBy=disk&usage=false'));
  // A backup still being made has no manifest yet: the catalog calls it incomplete, its orchestration says it runs.
  const inProgress = new Set((backups ?? []).filter((/** @type {any} */ b) => b.runtimeStatus === 'Running' || b.runtimeStatus === 'Pending').map((/** @type {any} */ b) => b.id));
  const rows = [];
  for (const group of disks ?? []) {
    for (const b of group.backups) {
      const c = b.catalog ?? {};
      const verified = verifiedText(b.lastVerified ?? c.lastVerified);
      const actions = el('td');
      const restorable = b.status === 'complete' && !c.locked;
      if (restorable && can('operator')) {
        actions.append(button('Verify', `Verify backup ${b.id}`, () => startVerification(b.id)));
      }
      if (restorable && can('restorer')) {
        actions.append(button('Restore…', `Restore backup ${b.id}`, () => openRestore(b.id)));
      }
      rows.push(
        el('tr', { 'data-backup': b.id }, [
          el('td', { class: 'id' }, [c.source ?? group.disk]),
          el('th', { scope: 'row', class: 'id' }, [b.id]),
          el('td', {}, [b.status === 'complete' ? (c.kind ?? 'full') : inProgress.has(b.id) ? 'in progress' : `${b.status}: ${b.problem ?? ''}`]),
          el('td', { class: 'num' }, [formatBytes(c.diskBytes)]),
          el('td', { class: 'num' }, [formatBytes(c.bytesStored)]),
          el('td', {}, [formatAge(c.completedAt ?? c.createdAt)]),
          el('td', { class: verified.cls }, [verified.text]),
          actions,
        ]),
      );
    }
  }
  fillTable(/** @type {HTMLTableElement} */ (byId('backups')), rows, 'No backups in the vault yet.');
}

async function loadVmBackups() {
  const { vmBackups } = await section('vms-error', () => getJson('/api/vm-backups'));
  const rows = (vmBackups ?? []).map((/** @type {any} */ v) => {
    const m = v.manifest ?? {};
    const disks = Array.isArray(m.disks) ? m.disks : [];
    const stored = disks.reduce((/** @type {number} */ n, /** @type {any} */ d) => n + (d.bytesStored ?? 0), 0);
    return el('tr', {}, [
      el('td', {}, [m.vmName ?? m.vmId ?? '—']),
      el('th', { scope: 'row', class: 'id' }, [v.id]),
      el('td', { class: 'num' }, [String(disks.length)]),
      el('td', {}, [m.capture ?? '—']),
      el('td', { class: 'num' }, [formatBytes(stored)]),
      el('td', {}, [formatAge(m.completedAt)]),
    ]);
  });
  fillTable(/** @type {HTMLTableElement} */ (byId('vm-backups')), rows, 'No VM backups in the vault yet.');
}

async function loadFailures() {
  const [ops, starts] = await section('failures-error', () => Promise.all([getJson('/api/operations?status=failed&top=20'), getJson('/api/starts')]));
  const rows = [
    ...ops.operations.map((/** @type {any} */ op) =>
      el('tr', {}, [el('td', {}, [`${KIND_NAMES[op.kind] ?? op.kind} ${op.runtimeStatus.toLowerCase()}`]), el('td', { class: 'id' }, [op.id]), el('td', {}, [formatAge(op.lastUpdatedTime)]), el('td', {}, [op.reason ?? '—'])]),
    ),
    ...starts.starts.map((/** @type {any} */ s) =>
      el('tr', {}, [el('td', {}, [`Backup start ${s.state} (${s.attempts} attempts)`]), el('td', { class: 'id' }, [s.target]), el('td', {}, [formatAge(s.at)]), el('td', {}, [s.reason ?? '—'])]),
    ),
  ];
  fillTable(/** @type {HTMLTableElement} */ (byId('failures')), rows, 'No failures.');
}

/**
 * @param {string} text
 * @param {string} label
 * @param {() => void} onClick
 */
function button(text, label, onClick) {
  const b = el('button', { type: 'button', 'aria-label': label }, [text]);
  b.addEventListener('click', onClick);
  return b;
}

/** @param {string} backupId */
async function startVerification(backupId) {
  try {
    const started = await postJson('/api/verifications', { backupId, readData: true }, { 'Idempotency-Key': crypto.randomUUID() });
    fastUntil = Date.now() + FAST_AFTER_START_MS;
    say(`Verification ${started.id} of backup ${backupId} started.`);
  } catch (err) {
    say(`Verification not started: ${message(err)}`);
  }
  await refresh();
}

/** @param {string} backupId */
function openRestore(backupId) {
  restoreBackupId = backupId;
  byId('restore-backup-id').textContent = backupId;
  byId('restore-error').textContent = '';
  /** @type {HTMLDialogElement} */ (byId('restore-dialog')).showModal();
}

/** @param {SubmitEvent} event */
async function submitRestore(event) {
  event.preventDefault();
  const target = /** @type {HTMLInputElement} */ (byId('restore-target'));
  const overwrite = /** @type {HTMLInputElement} */ (byId('restore-overwrite')).checked;
  try {
    const started = await postJson('/api/restores', { backupId: restoreBackupId, target: { url: target.value }, overwrite }, { 'Idempotency-Key': crypto.randomUUID() });
    target.value = ''; // it holds a SAS
    /** @type {HTMLDialogElement} */ (byId('restore-dialog')).close();
    fastUntil = Date.now() + FAST_AFTER_START_MS;
    say(`Restore ${started.id} of backup ${restoreBackupId} started.`);
    await refresh();
  } catch (err) {
    byId('restore-error').textContent = `Restore not started: ${message(err)}`;
  }
}

/** @param {SubmitEvent} event */
async function submitBackup(event) {
  event.preventDefault();
  const input = /** @type {HTMLInputElement} */ (byId('disk-url'));
  const full = /** @type {HTMLInputElement} */ (byId('backup-full')).checked;
  try {
    const started = await postJson('/api/backups', { source: { url: input.value }, ...(full ? { full: true } : {}) });
    input.value = ''; // it holds a SAS
    charted = started.instanceId ?? charted;
    fastUntil = Date.now() + FAST_AFTER_START_MS;
    say(started.duplicate ? `Backup ${started.id} was already ${String(started.runtimeStatus).toLowerCase()}.` : `Backup ${started.id} started.`);
  } catch (err) {
    say(`Backup not started: ${message(err)}`);
  }
  await refresh();
}

async function signOut() {
  clearTimeout(pollTimer);
  if (config.signIn === 'entra') {
    location.assign('/.auth/logout');
    return;
  }
  await postJson('/.auth/logout', {}).catch(() => undefined);
  me = null;
  say('Signed out.');
  showSignIn();
}

async function main() {
  byId('backup-form').addEventListener('submit', (e) => void submitBackup(/** @type {SubmitEvent} */ (e)));
  byId('restore-form').addEventListener('submit', (e) => void submitRestore(/** @type {SubmitEvent} */ (e)));
  byId('restore-cancel').addEventListener('click', () => /** @type {HTMLDialogElement} */ (byId('restore-dialog')).close());
  byId('sign-out').addEventListener('click', () => void signOut());
  byId('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = /** @type {HTMLInputElement} */ (byId('token'));
    const token = input.value.trim();
    input.value = '';
    void signIn(token).then((ok) => (ok ? showSession() : undefined));
  });
  config = await getJson('config.json').catch(() => config);
  const token = takeLoginToken();
  if (token) await signIn(token);
  await showSession();
}

void main();
