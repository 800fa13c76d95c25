// Vigil's worklist: plain JavaScript, no framework. Every text from the
// server goes into the page with textContent, never as HTML.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const SEVERITY_LABEL = {
    CONTRAINDICATED: 'Contraindicated', MAJOR: 'Major', MODERATE: 'Moderate', MINOR: 'Minor', INFO: 'Info',
    UNSPECIFIED: 'Unspecified',
  };
  const SEVERITY_RANK = { CONTRAINDICATED: 5, MAJOR: 4, MODERATE: 3, MINOR: 2, INFO: 1, UNSPECIFIED: 0 };
  const KIND_LABEL = {
    CONTRAINDICATION: 'Contraindication', DRUG_INTERACTION: 'Drug interaction', ALLERGY: 'Allergy',
    DUPLICATE_THERAPY: 'Duplicate therapy', UNSCREENED_DRUG: 'Unscreened drug', INCOMPLETE_DATA: 'Incomplete data',
    UNSPECIFIED: 'Other',
  };

  const state = {
    session: null,      // GET /ui/api/session
    alerts: new Map(),  // alertId -> row
    lastEvent: 0,       // the last event number applied
    source: null,       // the EventSource
    reconnectTimer: 0,
    openAlertId: null,  // the alert shown in the alert view
    returnFocus: null,  // the alert id whose row had the focus
  };

  // ---- helpers ----
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child != null) node.append(child);
    }
    return node;
  }
  function severityBadge(code) {
    const label = SEVERITY_LABEL[code] || code;
    return el('span', { class: 'sev sev-' + code, text: label });
  }
  function strip(value, prefix) {
    return typeof value === 'string' && value.startsWith(prefix) ? value.slice(prefix.length) : (value || '');
  }
  function when(iso) {
    const d = new Date(iso);
    return isNaN(d) ? '' : d.toLocaleString([], { dateStyle: 'short', timeStyle: 'short' });
  }
  function show(message, ok) {
    const box = $('message');
    box.textContent = message || '';
    box.classList.toggle('ok', !!ok);
    box.hidden = !message;
  }

  async function api(method, path, body) {
    const options = { method, headers: {}, credentials: 'same-origin', cache: 'no-store' };
    if (method === 'POST') {
      options.headers['Content-Type'] = 'application/json';
      if (state.session && state.session.csrf) options.headers['X-CSRF-Token'] = state.session.csrf;
      options.body = JSON.stringify(body || {});
    }
    const res = await fetch(path, options);
    const data = await res.json().catch(() => ({}));
    if (res.status === 401 && path !== '/ui/api/session') {
      signedOut('Your session has ended: sign in again.');
    }
    if (!res.ok) throw new Error(data.error || ('HTTP ' + res.status));
    return data;
  }

  // ---- views ----
  function view(name) {
    for (const id of ['signin', 'worklist', 'alert-view', 'drugs']) $(id).hidden = id !== name;
    $('tab-worklist').setAttribute('aria-current', name === 'worklist' || name === 'alert-view' ? 'page' : 'false');
    $('tab-drugs').setAttribute('aria-current', name === 'drugs' ? 'page' : 'false');
  }

  function signedOut(message) {
    state.session = null;
    if (state.source) state.source.close();
    state.source = null;
    clearTimeout(state.reconnectTimer);
    $('nav').hidden = true;
    $('signout').hidden = true;
    $('live-status').hidden = true;
    $('user').textContent = '';
    view('signin');
    show(message || '');
    $('token').focus();
  }

  async function signedIn(session) {
    state.session = session;
    $('nav').hidden = false;
    $('signout').hidden = session.development;
    $('user').textContent = session.user + (session.development ? ' (development mode)' : '');
    const reasons = $('reason');
    reasons.replaceChildren(el('option', { value: '', text: 'Choose a reason' }));
    for (const r of session.overrideReasons || []) reasons.append(el('option', { value: r.code, text: r.display }));
    show('');
    view('worklist');
    await loadWorklist();
    api('GET', '/ui/api/kb').then((kb) => {
      $('kb-version').textContent = 'Knowledge base ' + kb.version + ' · ' + kb.drugCount + ' drugs';
    }).catch(() => {});
  }

  // ---- worklist ----
  async function loadWorklist() {
    const data = await api('GET', '/ui/api/worklist');
    state.alerts.clear();
    for (const row of data.alerts) state.alerts.set(row.alertId, row);
    state.lastEvent = data.latest;
    render();
    connect();
  }

  function filtered() {
    const minimum = Number($('filter-severity').value);
    const kind = $('filter-kind').value;
    const patient = $('filter-patient').value.trim().toLowerCase();
    return [...state.alerts.values()]
      .filter((a) => a.severityRank >= minimum && (!kind || a.kind === kind) &&
        (!patient || a.patientId.toLowerCase().includes(patient)))
      .sort((a, b) => b.severityRank - a.severityRank || b.eventNumber - a.eventNumber);
  }

  function render() {
    const focused = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.alertId : null;
    const rows = filtered();
    const body = $('alert-rows');
    body.replaceChildren(...rows.map((a) => {
      const open = el('button', { type: 'button', class: 'open', 'data-alert-id': a.alertId, text: a.summary });
      open.addEventListener('click', () => openAlert(a.alertId));
      return el('tr', { 'data-alert-id': a.alertId },
        el('td', {}, severityBadge(a.severity)),
        el('td', {}, open, el('div', { class: 'drugs', text: a.drugIds.join(', ') })),
        el('td', { text: KIND_LABEL[a.kind] || a.kind }),
        el('td', { class: 'patient', text: a.patientId }),
        el('td', { class: 'when', text: when(a.raisedTime) }));
    }));
    $('empty').hidden = rows.length > 0;
    $('count').textContent = rows.length === state.alerts.size
      ? '(' + rows.length + ')' : '(' + rows.length + ' of ' + state.alerts.size + ')';
    if (focused) {
      const again = body.querySelector('button[data-alert-id="' + CSS.escape(focused) + '"]');
      if (again) again.focus();
    }
  }

  function activity(event) {
    const list = $('activity');
    let text = '';
    if (event.type === 'ACKNOWLEDGED' && event.ack) {
      const ack = event.ack;
      const outcome = strip(ack.outcome, 'ACKNOWLEDGEMENT_OUTCOME_').toLowerCase();
      text = outcome.charAt(0).toUpperCase() + outcome.slice(1) + ' by ' + (ack.agent || ack.user || '?');
      if (ack.reason && ack.reason.display) text += ': ' + ack.reason.display;
      if (ack.comment) text += ' (“' + ack.comment + '”)';
    } else if (event.type === 'RAISED') {
      text = 'Raised';
    } else if (event.type === 'RESOLVED') {
      text = 'Resolved';
    } else {
      text = event.type;
    }
    const item = el('li', { 'data-type': event.type },
      el('div', {}, severityBadge(event.severity), ' ', el('span', { class: 'type', text }), ' · #' + event.n),
      el('div', { text: (event.summary || '') + (event.patientId ? ' — ' + event.patientId : '') }));
    list.prepend(item);
    while (list.children.length > 50) list.lastChild.remove();
  }

  function apply(event) {
    if (event.n <= state.lastEvent) return;  // already in the snapshot
    state.lastEvent = event.n;
    if (event.type === 'RAISED' && event.row) {
      state.alerts.set(event.alertId, event.row);
    } else {
      state.alerts.delete(event.alertId);
    }
    activity(event);
    render();
    if (state.openAlertId === event.alertId && event.type !== 'RAISED') refreshAlert();
  }

  // ---- the live feed ----
  function liveState(live) {
    const status = $('live-status');
    status.hidden = false;
    status.classList.toggle('reconnecting', !live);
    status.textContent = live ? 'Live' : 'Reconnecting…';
    status.dataset.state = live ? 'live' : 'reconnecting';
  }

  function connect() {
    if (state.source) state.source.close();
    clearTimeout(state.reconnectTimer);
    const source = new EventSource('/ui/api/events?after=' + encodeURIComponent(state.lastEvent));
    state.source = source;
    let grace = 0;
    source.onopen = () => { clearTimeout(grace); liveState(true); };
    source.addEventListener('alert', (e) => apply(JSON.parse(e.data)));
    source.addEventListener('heartbeat', () => liveState(true));
    source.onerror = () => {
      // A planned end of the stream reconnects at once: say so only if it
      // takes a while.
      clearTimeout(grace);
      grace = setTimeout(() => liveState(false), 2500);
      if (source.readyState === EventSource.CLOSED) {
        // Refused (signed out, or too many streams): check, then retry.
        state.reconnectTimer = setTimeout(async () => {
          try {
            const session = await api('GET', '/ui/api/session');
            if (!session.signedIn) return signedOut('Your session has ended: sign in again.');
          } catch (err) { /* keep trying */ }
          connect();
        }, 3000);
      }
    };
  }

  // ---- the alert view ----
  async function openAlert(alertId) {
    state.openAlertId = alertId;
    state.returnFocus = alertId;
    $('ack-form').reset();
    await refreshAlert();
    view('alert-view');
    $('alert-title').focus();
  }

  function closeAlert() {
    state.openAlertId = null;
    view('worklist');
    render();
    const row = $('alert-rows').querySelector('button[data-alert-id="' + CSS.escape(state.returnFocus || '') + '"]');
    (row || $('filter-severity')).focus();
  }

  function fillList(id, items) {
    $(id).replaceChildren(...(items.length ? items : [el('li', { class: 'note', text: 'None' })]));
  }

  async function refreshAlert() {
    let data;
    try {
      data = await api('POST', '/ui/api/alert', { alertId: state.openAlertId });
    } catch (err) {
      show('The alert could not be read: ' + err.message);
      return;
    }
    const record = data.record;
    const alert = record.alert || {};
    const severity = strip(alert.severity, 'SEVERITY_') || 'UNSPECIFIED';
    $('alert-severity').replaceChildren(severityBadge(severity));
    $('alert-title').textContent = alert.summary || '';
    $('alert-kind').textContent = KIND_LABEL[strip(alert.kind, 'ALERT_KIND_')] || '';
    $('alert-patient').textContent = record.patientId || '';
    const status = strip(record.status, 'ALERT_STATUS_');
    $('alert-status').textContent = status.charAt(0) + status.slice(1).toLowerCase();
    $('alert-detail').textContent = alert.detail || '';
    $('alert-recommendation').textContent = alert.recommendation || '';
    fillList('alert-evidence', (alert.evidence || []).map((e) =>
      el('li', { text: e.description + (e.code ? ' (' + (e.system || '') + ' ' + e.code + ')' : '') })));
    fillList('alert-sources', (alert.sources || []).map((s) => {
      if (s.url && /^https?:\/\//.test(s.url)) {
        return el('li', {}, el('a', { href: s.url, rel: 'noopener noreferrer', target: '_blank', text: s.title || s.url }));
      }
      return el('li', { text: s.title || s.id });
    }));
    fillList('alert-history', (record.history || []).map(historyItem));
    patientContext(data.patient);
    const active = status === 'ACTIVE';
    $('ack-form').hidden = !active || !state.session.canAcknowledge;
    $('ack-readonly').hidden = !active || state.session.canAcknowledge;
  }

  function historyItem(h) {
    let text = '#' + h.eventNumber + ' ' + strip(h.type, 'ALERT_EVENT_TYPE_').toLowerCase() + ' ' + when(h.eventTime);
    if (h.acknowledgement) {
      const ack = h.acknowledgement;
      text += ' — ' + strip(ack.outcome, 'ACKNOWLEDGEMENT_OUTCOME_').toLowerCase() + ' by ' + (ack.agent || ack.user);
      if (ack.reason && ack.reason.display) text += ': ' + ack.reason.display;
      if (ack.comment) text += ' (“' + ack.comment + '”)';
    }
    return el('li', { text });
  }

  function patientContext(patient) {
    const dl = $('patient-context');
    dl.replaceChildren();
    if (!patient) {
      dl.append(el('dt', { text: 'Patient' }), el('dd', { text: 'No longer stored' }));
      return;
    }
    const add = (term, values) => {
      dl.append(el('dt', { text: term }), el('dd', { text: values.length ? values.join('; ') : 'None recorded' }));
    };
    const coding = (c) => (c && (c.display || c.code)) || '';
    add('Born', patient.birthDate ? [patient.birthDate] : []);
    add('Sex', patient.sex ? [strip(patient.sex, 'SEX_').toLowerCase()] : []);
    add('Weight', patient.weightKg ? [patient.weightKg + ' kg'] : []);
    add('Medications', (patient.medications || []).map((m) =>
      [m.drug || m.text || coding(m.coding), m.doseValue ? m.doseValue + ' ' + (m.doseUnit || '') : '', m.frequency || '']
        .filter(Boolean).join(' ')));
    add('Conditions', (patient.conditions || []).map((c) => coding(c.code)));
    add('Allergies', (patient.allergies || []).map((a) => a.substance + (a.reaction ? ' (' + a.reaction + ')' : '')));
    add('Labs', (patient.labs || []).map((l) =>
      coding(l.code) + ' ' + l.value + ' ' + (l.unit || '') + (l.effectiveTime ? ' on ' + l.effectiveTime : '')));
  }

  async function acknowledge(event) {
    event.preventDefault();
    const chosen = document.querySelector('input[name="outcome"]:checked');
    if (!chosen) return show('Choose accept or override.');
    if (chosen.value === 'overridden' && !$('reason').value) {
      show('An override needs a reason.');
      return $('reason').focus();
    }
    try {
      await api('POST', '/ui/api/ack', {
        alertId: state.openAlertId, outcome: chosen.value, reasonCode: $('reason').value, comment: $('comment').value,
      });
      show(chosen.value === 'accepted' ? 'Alert accepted.' : 'Alert overridden.', true);
      state.alerts.delete(state.openAlertId);
      closeAlert();
    } catch (err) {
      show('Not recorded: ' + err.message);
    }
  }

  // ---- drug monographs ----
  async function searchDrugs(event) {
    event.preventDefault();
    const q = $('drug-query').value.trim();
    try {
      const data = await api('GET', '/ui/api/drugs?q=' + encodeURIComponent(q));
      $('drug-results').replaceChildren(...data.drugs.map((d) => {
        const b = el('button', { type: 'button', 'data-drug-id': d.id }, d.name,
          d.brandNames.length ? el('span', { class: 'brands', text: ' (' + d.brandNames.join(', ') + ')' }) : null);
        b.addEventListener('click', () => showDrug(d.id));
        return el('li', {}, b);
      }));
      if (!data.drugs.length) $('drug-results').append(el('li', { class: 'note', text: 'No drug matches.' }));
    } catch (err) {
      show('Search failed: ' + err.message);
    }
  }

  function section(title, items) {
    if (!items.length) return [];
    return [el('h3', { text: title }), el('ul', {}, ...items.map((t) => el('li', { text: t })))];
  }

  async function showDrug(id) {
    let d;
    try {
      d = await api('GET', '/ui/api/drug?name=' + encodeURIComponent(id));
    } catch (err) {
      return show('Not found: ' + err.message);
    }
    const freq = (f) => strip(f, 'SIDE_EFFECT_FREQUENCY_').toLowerCase().replace(/_/g, ' ');
    const sev = (s) => SEVERITY_LABEL[strip(s, 'SEVERITY_')] || '';
    const parts = [el('h2', { text: d.name + ' (' + d.id + ')', tabindex: '-1' })];
    if ((d.synonyms || []).length) parts.push(el('p', { text: 'Also: ' + d.synonyms.join(', ') }));
    if ((d.brandNames || []).length) parts.push(el('p', { text: 'Brands: ' + d.brandNames.join(', ') }));
    parts.push(el('p', { text: 'Classes: ' + (d.classes || []).map((c) => c.name).join('; ') }));
    if (d.mechanism) parts.push(el('p', { text: 'Mechanism: ' + d.mechanism }));
    parts.push(...section('Indications', d.indications || []));
    parts.push(...section('Side effects', (d.sideEffects || []).map((s) => s.name + ' (' + freq(s.frequency) + ')')));
    parts.push(...section('Contraindications and warnings', (d.contraindications || []).map((c) =>
      sev(c.severity) + ' — ' + c.condition + ': ' + c.summary)));
    parts.push(...section('Interactions', (d.interactions || []).map((i) =>
      sev(i.severity) + ' — with ' + (i.interactsWith || []).join(', ') + ': ' + i.summary)));
    const sources = (d.sources || []).map((s) => el('li', {}, s.url && /^https?:\/\//.test(s.url)
      ? el('a', { href: s.url, rel: 'noopener noreferrer', target: '_blank', text: s.title || s.url })
      : (s.title || s.id)));
    if (sources.length) parts.push(el('h3', { text: 'Sources' }), el('ul', {}, ...sources));
    $('monograph').replaceChildren(...parts);
    $('monograph').querySelector('h2').focus();
  }

  // ---- start ----
  async function start() {
    $('signin-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        const session = await api('POST', '/ui/api/session', { token: $('token').value });
        $('token').value = '';
        await signedIn(session);
      } catch (err) {
        show('Sign-in failed: ' + err.message);
      }
    });
    $('signout').addEventListener('click', async () => {
      try { await api('POST', '/ui/api/signout'); } catch (err) { /* signed out anyway */ }
      signedOut('Signed out.');
    });
    for (const id of ['filter-severity', 'filter-kind', 'filter-patient']) $(id).addEventListener('input', render);
    $('filters').addEventListener('submit', (e) => e.preventDefault());
    $('back').addEventListener('click', closeAlert);
    $('alert-view').addEventListener('keydown', (e) => { if (e.key === 'Escape') closeAlert(); });
    $('ack-form').addEventListener('submit', acknowledge);
    $('tab-worklist').addEventListener('click', () => { view('worklist'); render(); });
    $('tab-drugs').addEventListener('click', () => { view('drugs'); $('drug-query').focus(); });
    $('drug-search-form').addEventListener('submit', searchDrugs);
    try {
      const session = await api('GET', '/ui/api/session');
      if (session.signedIn) await signedIn(session);
      else signedOut('');
    } catch (err) {
      signedOut(err.message);
    }
  }
  document.addEventListener('DOMContentLoaded', start);
})();
