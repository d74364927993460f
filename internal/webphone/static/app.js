// Z5 web phone: plain JavaScript, no build step, nothing from elsewhere.
// The page keeps only the ZDial session token and the chosen number (in
// sessionStorage, gone with the tab); SIP credentials live in memory.
'use strict';

const $ = (id) => document.getElementById(id);
const show = (el, on) => { el.hidden = !on; };

const state = {
  zdialToken: '', mcsToken: '', number: '', sip: null, license: '',
  ws: null, ping: 0, registered: false,
  pc: null, local: null, camTrack: null, slate: null, call: null,
  contacts: [], editing: null, quality: [], lastBytes: 0, lastTime: 0, statsTimer: 0,
  ringTimer: 0,
};
window.z5 = state; // the tests read the connection's getStats()

function instanceID() {
  let id = localStorage.getItem('z5-instance');
  if (!id) {
    id = 'urn:uuid:' + crypto.randomUUID();
    localStorage.setItem('z5-instance', id);
  }
  return id;
}

function setStatus(text) { $('status').textContent = text; }
function alertMsg(text) {
  const a = $('alert');
  a.textContent = '';
  // A fresh text node so screen readers announce a repeated message.
  setTimeout(() => { a.textContent = text; }, 30);
}

async function api(method, path, body, token, extra) {
  const headers = Object.assign({ 'Accept': 'application/json' }, extra || {});
  if (token) headers['Authorization'] = 'Bearer ' + token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  let data = null;
  const text = await res.text();
  if (text) { try { data = JSON.parse(text); } catch (e) { data = null; } }
  if (!res.ok) {
    let msg = data && data.error && data.error.message ? data.error.message : ('request failed (' + res.status + ')');
    if (data && data.error && data.error.fields) msg += ' (' + data.error.fields.map((f) => f.field + ': ' + f.message).join('; ') + ')';
    const err = new Error(msg);
    err.status = res.status;
    throw err;
  }
  return { data, etag: res.headers.get('ETag') };
}

// ---- sign in, number choice, sign out ----

function showScreen(name) {
  show($('operator-screen'), name === 'operator');
  show($('signin-screen'), name === 'signin');
  show($('number-screen'), name === 'number');
  show($('phone-screen'), name === 'phone');
  show($('signout'), name !== 'signin');
}

$('signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const username = $('username').value.trim();
  const password = $('password').value;
  setStatus('Signing in…');
  try {
    const { data } = await api('POST', '/web/zdial/login', { username, password });
    $('password').value = '';
    state.zdialToken = data.token;
    sessionStorage.setItem('z5-zdial', data.token);
    const numbers = data.numbers || [];
    if (data.role === 'staff') {
      state.staff = true;
      showScreen('operator');
      setStatus('Signed in as staff: operator view');
      refreshOperator();
      return;
    }
    if (numbers.length === 0) {
      alertMsg('This account has no phone numbers.');
      setStatus('Signed in, no phone number');
      return;
    }
    if (numbers.length === 1) {
      await selectNumber(numbers[0].number);
      return;
    }
    const sel = $('number');
    sel.textContent = '';
    sel.size = Math.min(numbers.length, 6);
    for (const n of numbers) {
      const o = document.createElement('option');
      o.value = n.number;
      o.textContent = n.label ? n.number + ' (' + n.label + ')' : n.number;
      sel.appendChild(o);
    }
    sel.selectedIndex = 0;
    setStatus('Choose a phone number');
    showScreen('number');
    sel.focus();
  } catch (e) {
    setStatus('Signed out');
    alertMsg('Sign in failed: ' + e.message);
  }
});

$('number-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const n = $('number').value;
  if (!n) { alertMsg('Choose a phone number first.'); return; }
  try { await selectNumber(n); } catch (e) { alertMsg('Could not use ' + n + ': ' + e.message); }
});

async function selectNumber(number) {
  setStatus('Connecting ' + number + '…');
  const { data } = await api('POST', '/web/zdial/select',
    { number, device_name: 'Web phone', instance_id: instanceID() }, state.zdialToken);
  state.number = data.number;
  state.mcsToken = data.mcs_token;
  state.sip = data.sip;
  sessionStorage.setItem('z5-number', data.number);
  const lic = await api('POST', '/api/v1/license', {}, state.mcsToken);
  state.license = lic.data.license;
  state.interpreter = /^ca-/.test(state.number);
  show($('interpreter'), state.interpreter);
  show($('dial-section'), !state.interpreter);
  show($('contacts-section'), !state.interpreter);
  show($('settings-section'), !state.interpreter);
  showScreen('phone');
  connect();
  if (state.interpreter) {
    $('interp-station').textContent = state.number;
    pollACD();
  } else {
    loadContacts();
    loadLocation();
  }
}

// ---- registered location ----

async function loadLocation() {
  try {
    const { data } = await api('GET', '/api/v1/location', undefined, state.mcsToken);
    $('loc-street').value = data.street || '';
    $('loc-city').value = data.city || '';
    $('loc-state').value = data.state || '';
    $('loc-zip').value = data.zip || '';
  } catch (e) {
    if (e.status !== 404) alertMsg('Could not read your registered location: ' + e.message);
  }
}

$('location-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const body = { street: $('loc-street').value.trim(), city: $('loc-city').value.trim(),
    state: $('loc-state').value.trim().toUpperCase(), zip: $('loc-zip').value.trim(), country: 'US' };
  try {
    await api('PUT', '/api/v1/location', body, state.mcsToken);
    alertMsg('Your registered location is saved.');
  } catch (e) {
    alertMsg('Could not save the location: ' + e.message);
  }
});

// ---- interpreter mode ----

// The station's states as the MCS names them, in the page's words; the
// hint says why no call is offered.
const acdStates = {
  ready: ['Ready', ''],
  not_ready: ['Not ready', 'No relay calls are offered until you are ready.'],
  offered: ['Call offered', ''],
  in_call: ['In a call', ''],
  wrap_up: ['Wrap-up', 'Wrap-up after your last call: no call is offered until it ends, then you are ready again.'],
};

async function pollACD() {
  clearTimeout(state.acdTimer);
  if (!state.interpreter || !state.mcsToken) return;
  try {
    const { data } = await api('GET', '/api/v1/acd/state', undefined, state.mcsToken);
    const [label, hint] = acdStates[data.state] || [data.state.replace('_', ' '), ''];
    $('interp-state').textContent = label;
    $('interp-hint').textContent = hint;
    show($('interp-hint'), !!hint);
    $('interp-queue').textContent = String(data.queue_depth);
  } catch (e) { $('interp-state').textContent = 'unknown (' + e.message + ')'; }
  state.acdTimer = setTimeout(pollACD, 3000);
}

async function setACD(s) {
  try {
    await api('PUT', '/api/v1/acd/state', { state: s }, state.mcsToken);
    alertMsg(s === 'ready' ? 'You are ready for relay calls.' : 'You are not ready: no calls will be offered.');
  } catch (e) { alertMsg('Could not change your state: ' + e.message); }
  pollACD();
}
$('ready').addEventListener('click', () => setACD('ready'));
$('not-ready').addEventListener('click', () => setACD('not_ready'));

const directions = { outbound: 'Outbound relay call', inbound: 'Inbound relay call', emergency: 'Emergency (911) relay call' };

function showOffer(o) {
  const dl = $('offer-details');
  dl.textContent = '';
  show(dl, !!o);
  if (!o) return;
  const rows = [['Call', directions[o.direction] || o.direction], ['Caller', o.caller], ['Deaf or hard-of-hearing user', o.user],
    ['Number dialled', o.dialed], ['Location', o.location], ['Callback number', o.callback]];
  for (const [k, v] of rows) {
    if (!v) continue;
    const dt = document.createElement('dt'); dt.textContent = k;
    const dd = document.createElement('dd'); dd.textContent = v;
    dl.appendChild(dt); dl.appendChild(dd);
  }
}

async function dialHearing() {
  if (!state.call || !state.call.relay || state.pc2) return;
  show($('dial-hearing'), false);
  $('hearing-status').textContent = 'Calling the hearing party…';
  show($('hearing-status'), true);
  try {
    const mic = state.local && state.local.getAudioTracks()[0];
    const pc2 = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    state.pc2 = pc2;
    if (mic) pc2.addTrack(mic.clone());
    else pc2.addTransceiver('audio', { direction: 'sendrecv' });
    const remote = new MediaStream();
    $('hearing-audio').srcObject = remote;
    pc2.ontrack = (ev) => remote.addTrack(ev.track);
    await pc2.setLocalDescription(await pc2.createOffer());
    send({ type: 'dial_hearing', sdp: pc2.localDescription.sdp });
  } catch (e) {
    alertMsg('Could not call the hearing party: ' + e.message);
    hearingEnded();
  }
}
$('dial-hearing').addEventListener('click', dialHearing);
$('hangup-hearing').addEventListener('click', () => send({ type: 'hangup', leg: 'hearing' }));
// Hold is done by the gateway (the hearing leg's audio stops both ways);
// the button shows what the gateway reports.
$('hold-hearing').addEventListener('click', () => send({ type: 'hold', hold: $('hold-hearing').getAttribute('aria-pressed') !== 'true' }));
$('end-call').addEventListener('click', hangUp);

function hearingEnded(reason) {
  if (state.pc2) {
    for (const s of state.pc2.getSenders()) if (s.track) s.track.stop();
    state.pc2.close();
    state.pc2 = null;
  }
  $('hearing-audio').srcObject = null;
  show($('hangup-hearing'), false);
  showHeld(false);
  show($('hold-hearing'), false);
  if (state.call && state.call.relay) {
    show($('dial-hearing'), true);
    $('hearing-status').textContent = reason ? 'The hearing party\'s line: ' + reason + '.' : '';
  } else {
    show($('hearing-status'), false);
  }
  if (reason) alertMsg(sentence((outcomes[reason] || outcomes.failed)('the hearing party')));
}

function onHearing(m) {
  switch (m.type) {
    case 'sdp':
      if (state.pc2) state.pc2.setRemoteDescription({ type: 'answer', sdp: m.sdp }).catch((e) => alertMsg('Media failed: ' + e.message));
      break;
    case 'ringing': $('hearing-status').textContent = 'The hearing party\'s phone is ringing…'; break;
    case 'answered':
      $('hearing-status').textContent = 'The hearing party is on the line.';
      show($('hangup-hearing'), true);
      show($('hold-hearing'), true);
      break;
    case 'held':
      showHeld(!!m.hold);
      $('hearing-status').textContent = m.hold ? 'The hearing party is on hold: they hear nothing from you, and you hear nothing from them.'
        : 'The hearing party is on the line.';
      break;
    case 'ended': hearingEnded(m.reason); break;
  }
}

// showHeld shows the hearing leg held or not, in the button and the
// phone's status.
function showHeld(held) {
  const was = $('hold-hearing').getAttribute('aria-pressed') === 'true';
  $('hold-hearing').setAttribute('aria-pressed', String(held));
  $('hearing-audio').muted = held;
  if (held) setStatus('On hold: the hearing party hears nothing' + (state.call ? '; you are still with ' + state.call.other : ''));
  else if (was && state.call && state.call.answered) setStatus('In a call with ' + state.call.other);
}

$('signout').addEventListener('click', async () => {
  hangUpLocal();
  clearTimeout(state.acdTimer);
  clearTimeout(state.opTimer);
  state.staff = false;
  if (state.interpreter) { try { await api('PUT', '/api/v1/acd/state', { state: 'not_ready' }, state.mcsToken); } catch (e) { /* signing out anyway */ } }
  state.interpreter = false;
  if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
  clearInterval(state.ping);
  try { if (state.zdialToken) await api('POST', '/web/zdial/logout', {}, state.zdialToken); } catch (e) { /* signed out anyway */ }
  sessionStorage.clear();
  Object.assign(state, { zdialToken: '', mcsToken: '', number: '', sip: null, license: '', registered: false });
  setStatus('Signed out');
  showScreen('signin');
  $('username').focus();
});

// ---- signalling ----

function connect() {
  const ws = new WebSocket('wss://' + location.host + '/web/ws');
  state.ws = ws;
  ws.onopen = () => {
    ws.send(JSON.stringify({ type: 'auth', token: state.mcsToken, license: state.license, sip: state.sip, instance: instanceID() }));
    state.ping = setInterval(() => send({ type: 'ping' }), 20000);
  };
  ws.onmessage = (ev) => { let m; try { m = JSON.parse(ev.data); } catch (e) { return; } onMessage(m); };
  ws.onclose = () => {
    clearInterval(state.ping);
    state.registered = false;
    hangUpLocal();
    setStatus('Not connected: reload the page or sign in again');
  };
}

function send(m) { if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(m)); }

function onMessage(m) {
  if (m.leg === 'hearing') { onHearing(m); return; }
  switch (m.type) {
    case 'registered':
      state.registered = true;
      setStatus('Ready for calls on ' + m.number);
      document.title = 'Z5 web phone: ' + m.number;
      send({ type: 'history' });
      break;
    case 'incoming': ringIn(m.from, m.name, m.offer); break;
    case 'ringing': setStatus('Ringing ' + (state.call ? state.call.other : '') + '…'); break;
    case 'sdp':
      if (state.pc) state.pc.setRemoteDescription({ type: 'answer', sdp: m.sdp }).catch((e) => alertMsg('Media failed: ' + e.message));
      break;
    case 'answered':
      if (state.call) {
        state.call.answered = true;
        $('call-h').textContent = (state.call.relay ? 'Relay call with ' : 'Call with ') + state.call.other;
        setStatus('In a call with ' + state.call.other);
        show($('dial-hearing'), !!state.call.relay);
        if (m.rtt) openText();
      }
      break;
    case 'rtt': textArrived(m.text || ''); break;
    case 'ended': callEnded(m.reason); break;
    case 'history': renderHistory(m.calls || []); break;
    case 'error': alertMsg(m.message); break;
  }
}

// ---- media ----

async function openMedia() {
  const constraints = { audio: micConstraint(), video: Object.assign({ width: 640, height: 480, frameRate: 30 }, camConstraint()) };
  state.local = await navigator.mediaDevices.getUserMedia(constraints);
  state.camTrack = state.local.getVideoTracks()[0] || null;
  $('self').srcObject = state.local;
  fillDevices();
  const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
  state.pc = pc;
  for (const t of state.local.getTracks()) pc.addTrack(t, state.local);
  // H.264 constrained baseline first: what the gateway forwards untouched.
  for (const tr of pc.getTransceivers()) {
    if (tr.sender.track && tr.sender.track.kind === 'video' && tr.setCodecPreferences) {
      const caps = RTCRtpSender.getCapabilities('video').codecs;
      const h264 = caps.filter((c) => /H264/i.test(c.mimeType) && /packetization-mode=1/.test(c.sdpFmtpLine || '') && /42e01f/.test(c.sdpFmtpLine || ''));
      const rest = caps.filter((c) => !h264.includes(c));
      if (h264.length) tr.setCodecPreferences(h264.concat(rest));
    }
  }
  const remote = new MediaStream();
  $('remote').srcObject = remote;
  // Click to first remote frame, for the benchmark.
  state.firstFrameMs = 0;
  if ($('remote').requestVideoFrameCallback) {
    $('remote').requestVideoFrameCallback(() => { state.firstFrameMs = Math.round(performance.now() - state.t0); });
  }
  pc.ontrack = (ev) => { remote.addTrack(ev.track); };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === 'failed' && state.call) { alertMsg('The media connection failed.'); hangUp(); }
  };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const t = setTimeout(resolve, 2000);
    pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') { clearTimeout(t); resolve(); } });
  });
  startStats();
  return pc.localDescription.sdp;
}

function camConstraint() { const id = $('camera').value; return id ? { deviceId: { exact: id } } : {}; }
function micConstraint() { const id = $('mic').value; return id ? { deviceId: { exact: id } } : true; }

async function fillDevices() {
  const devs = await navigator.mediaDevices.enumerateDevices();
  for (const [sel, kind] of [[$('camera'), 'videoinput'], [$('mic'), 'audioinput']]) {
    const cur = sel.value;
    sel.textContent = '';
    let i = 1;
    for (const d of devs.filter((x) => x.kind === kind)) {
      const o = document.createElement('option');
      o.value = d.deviceId;
      o.textContent = d.label || (kind === 'videoinput' ? 'Camera ' : 'Microphone ') + i;
      i++;
      sel.appendChild(o);
    }
    if (cur) sel.value = cur;
  }
}

async function switchDevice(kind) {
  if (!state.pc || !state.local) return;
  try {
    const s = await navigator.mediaDevices.getUserMedia(kind === 'video'
      ? { video: Object.assign({ width: 640, height: 480 }, camConstraint()) } : { audio: micConstraint() });
    const track = s.getTracks()[0];
    const old = state.local.getTracks().find((t) => t.kind === kind);
    const sender = state.pc.getSenders().find((x) => x.track && x.track.kind === kind) ||
      state.pc.getSenders().find((x) => x.track === state.slate);
    if (old) { state.local.removeTrack(old); old.stop(); }
    state.local.addTrack(track);
    if (kind === 'video') {
      state.camTrack = track;
      if ($('mute-camera').getAttribute('aria-pressed') !== 'true' && sender) await sender.replaceTrack(track);
    } else {
      track.enabled = $('mute-mic').getAttribute('aria-pressed') !== 'true';
      if (sender) await sender.replaceTrack(track);
    }
  } catch (e) { alertMsg('Could not switch device: ' + e.message); }
}
$('camera').addEventListener('change', () => switchDevice('video'));
$('mic').addEventListener('change', () => switchDevice('audio'));

// The far end sees a slate saying the camera is off, never a frozen frame.
function slateTrack() {
  const c = document.createElement('canvas');
  c.width = 640; c.height = 480;
  const g = c.getContext('2d');
  const draw = () => {
    g.fillStyle = '#1a1a1a'; g.fillRect(0, 0, 640, 480);
    g.fillStyle = '#ffffff'; g.font = '48px sans-serif'; g.textAlign = 'center';
    g.fillText('Camera off', 320, 230);
    g.font = '28px sans-serif';
    g.fillText(state.number || '', 320, 290);
  };
  draw();
  const stream = c.captureStream(5);
  const t = stream.getVideoTracks()[0];
  state.slateTimer = setInterval(draw, 200); // keeps frames flowing
  return t;
}

$('mute-camera').addEventListener('click', async () => {
  const b = $('mute-camera');
  const mute = b.getAttribute('aria-pressed') !== 'true';
  b.setAttribute('aria-pressed', String(mute));
  if (!state.pc) return;
  const sender = state.pc.getSenders().find((s) => s.track && s.track.kind === 'video');
  if (!sender) return;
  if (mute) {
    state.slate = slateTrack();
    await sender.replaceTrack(state.slate);
    $('self').srcObject = new MediaStream([state.slate]);
  } else {
    await sender.replaceTrack(state.camTrack);
    if (state.slate) { state.slate.stop(); state.slate = null; clearInterval(state.slateTimer); }
    $('self').srcObject = state.local;
  }
});

$('mute-mic').addEventListener('click', () => {
  const b = $('mute-mic');
  const mute = b.getAttribute('aria-pressed') !== 'true';
  b.setAttribute('aria-pressed', String(mute));
  if (state.local) for (const t of state.local.getAudioTracks()) t.enabled = !mute;
});

// ---- calls ----

function enterCall(other, heading) {
  const relay = state.call && state.call.relay;
  state.call = { other, answered: false, relay };
  show($('hangup'), !relay);
  show($('end-call'), !!relay);
  show($('dial-hearing'), false);
  show($('hangup-hearing'), false);
  show($('hearing-status'), false);
  $('call-h').textContent = heading;
  show($('call-screen'), true);
  show($('idle-screen'), false);
  $('mute-camera').setAttribute('aria-pressed', 'false');
  $('mute-mic').setAttribute('aria-pressed', 'false');
  (relay ? $('end-call') : $('hangup')).focus();
}

async function placeCall(number) {
  number = (number || '').trim();
  if (!number) { alertMsg('Enter a number to call.'); $('dial').focus(); return; }
  if (!state.registered) { alertMsg('The phone is not ready yet.'); return; }
  if (state.call) return;
  state.t0 = performance.now();
  const digits = number.replace(/[\s().-]/g, '');
  enterCall(digits, 'Calling ' + digits + '…');
  setStatus('Calling ' + digits + '…');
  try {
    const sdp = await openMedia();
    if (!state.call) return;
    send({ type: 'call', number: digits, sdp });
  } catch (e) {
    alertMsg('Could not start the camera or microphone: ' + e.message);
    hangUpLocal();
  }
}

$('dial-form').addEventListener('submit', (ev) => { ev.preventDefault(); placeCall($('dial').value); });
for (const b of document.querySelectorAll('[data-digit]')) {
  b.addEventListener('click', () => { $('dial').value += b.dataset.digit; });
}
$('backspace').addEventListener('click', () => { $('dial').value = $('dial').value.slice(0, -1); });

function hangUp() {
  if (!state.call) return;
  send({ type: 'hangup' });
}
$('hangup').addEventListener('click', hangUp);

function hangUpLocal() {
  stopRinging();
  hearingEnded();
  clearInterval(state.statsTimer);
  if (state.pc) { state.pc.close(); state.pc = null; }
  if (state.local) { for (const t of state.local.getTracks()) t.stop(); state.local = null; }
  if (state.slate) { state.slate.stop(); state.slate = null; clearInterval(state.slateTimer); }
  $('remote').srcObject = null;
  $('self').srcObject = null;
  state.call = null;
  show($('quality'), false);
  show($('rtt-room'), false);
  show($('call-screen'), false);
  show($('incoming'), false);
  show($('idle-screen'), true);
}

// sentence starts s with a capital letter.
const sentence = (s) => s.charAt(0).toUpperCase() + s.slice(1);

const outcomes = {
  busy: (n) => n + ' is busy.',
  unavailable: (n) => n + ' is not available.',
  declined: (n) => n + ' declined the call.',
  ended: (n) => 'The call with ' + n + ' ended.',
  missed: (n) => 'Missed call from ' + n + '.',
  cancelled: (n) => 'The call to ' + n + ' was cancelled.',
  'invalid number': (n) => n + ' is not a number this phone can call.',
  failed: (n) => 'The call with ' + n + ' failed.',
};

function callEnded(reason) {
  const who = state.call ? state.call.other : (state.ringingFrom || 'the caller');
  hangUpLocal();
  alertMsg((outcomes[reason] || outcomes.failed)(who));
  if (state.registered) setStatus('Ready for calls on ' + state.number);
  send({ type: 'history' });
  pollACD(); // the station's wrap-up, at once
}

function ringIn(from, name, offer) {
  state.ringingFrom = from;
  state.call = { other: from, answered: false, incoming: true, relay: offer || null };
  showOffer(offer);
  $('incoming-from').textContent = name ? name + ' (' + from + ')' : from;
  show($('incoming'), true);
  $('answer').focus();
  setStatus('Incoming call from ' + from);
  let on = false;
  state.ringTimer = setInterval(() => {
    on = !on;
    document.title = on ? 'Incoming call from ' + from : 'Z5 web phone';
  }, 1000);
  $('favicon').href = '/web/favicon-ring.svg';
  if (document.hidden && 'Notification' in window) {
    const note = () => { try { new Notification('Incoming call', { body: 'From ' + from, tag: 'z5-ring' }); } catch (e) { /* shown on the page */ } };
    if (Notification.permission === 'granted') note();
    else if (Notification.permission !== 'denied') Notification.requestPermission().then((p) => { if (p === 'granted') note(); });
  }
}

function stopRinging() {
  clearInterval(state.ringTimer);
  document.title = state.number ? 'Z5 web phone: ' + state.number : 'Z5 web phone';
  $('favicon').href = '/web/favicon.svg';
  show($('incoming'), false);
}

$('answer').addEventListener('click', async () => {
  if (!state.call || !state.call.incoming) return;
  const from = state.call.other;
  stopRinging();
  enterCall(from, 'Connecting ' + from + '…');
  try {
    const sdp = await openMedia();
    send({ type: 'answer', sdp });
  } catch (e) {
    alertMsg('Could not start the camera or microphone: ' + e.message);
    send({ type: 'decline' });
    hangUpLocal();
  }
});
$('decline').addEventListener('click', () => { send({ type: 'decline' }); stopRinging(); });

// ---- real-time text ----

function openText() {
  $('rtt-log').textContent = '';
  $('rtt-in').value = '';
  state.rttLine = null;
  show($('rtt-room'), true);
}

// The box sends every keystroke as typed; edits happen at its end only, as
// the other side sees them (T.140 has no cursor).
$('rtt-in').addEventListener('beforeinput', (ev) => {
  ev.preventDefault();
  const box = $('rtt-in');
  let out = '';
  switch (ev.inputType) {
    case 'insertText': case 'insertReplacementText': case 'insertFromPaste': case 'insertFromDrop':
      out = ev.data || (ev.dataTransfer ? ev.dataTransfer.getData('text/plain') : '');
      box.value += out;
      break;
    case 'insertLineBreak': case 'insertParagraph':
      out = '\n';
      box.value += out;
      break;
    case 'deleteContentBackward':
      if (!box.value || box.value.endsWith('\n')) return; // a finished line stays
      out = '\b';
      box.value = box.value.slice(0, -1);
      break;
    default:
      return;
  }
  box.selectionStart = box.selectionEnd = box.value.length;
  if (out) send({ type: 'rtt', text: out });
});
$('rtt-in').addEventListener('paste', (ev) => {
  // Chromium gives no data on beforeinput for a paste into a textarea.
  ev.preventDefault();
  const text = ev.clipboardData.getData('text/plain');
  if (!text) return;
  $('rtt-in').value += text;
  send({ type: 'rtt', text });
});

function textArrived(text) {
  const log = $('rtt-log');
  for (const ch of text) {
    if (!state.rttLine) {
      state.rttLine = document.createElement('p');
      state.rttLine.textContent = '';
      log.appendChild(state.rttLine);
    }
    if (ch === '\b') state.rttLine.textContent = [...state.rttLine.textContent].slice(0, -1).join('');
    else if (ch === '\u2028' || ch === '\n' || ch === '\r' || ch === '\u2029') state.rttLine = null;
    else if (ch !== '\ufeff') state.rttLine.textContent += ch;
  }
  log.scrollTop = log.scrollHeight;
}

// ---- call quality ----

function startStats() {
  state.quality = [];
  state.lastBytes = 0;
  state.lastTime = 0;
  clearInterval(state.statsTimer);
  state.statsTimer = setInterval(async () => {
    if (!state.pc) return;
    const stats = await state.pc.getStats();
    let v = null;
    stats.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') v = s; });
    if (!v || !v.framesDecoded) return;
    const now = v.timestamp;
    const first = !state.lastTime;
    const kbps = first ? 0 : Math.round(((v.bytesReceived - state.lastBytes) * 8) / (now - state.lastTime));
    state.lastBytes = v.bytesReceived;
    state.lastTime = now;
    if (first) return; // a rate needs two samples
    const lost = v.packetsLost || 0;
    const total = lost + (v.packetsReceived || 0);
    const loss = total ? ((100 * lost) / total).toFixed(1) : '0.0';
    $('quality-text').textContent = (v.frameWidth || 0) + '×' + (v.frameHeight || 0) + ', ' +
      Math.round(v.framesPerSecond || 0) + ' frames/s, ' + kbps + ' kbit/s, ' + loss + '% lost';
    state.quality.push(kbps);
    if (state.quality.length > 60) state.quality.shift();
    drawGraph();
    show($('quality'), true);
  }, 1000);
}

function drawGraph() {
  const c = $('quality-graph');
  const g = c.getContext('2d');
  g.fillStyle = '#ffffff'; g.fillRect(0, 0, c.width, c.height);
  const max = Math.max(100, ...state.quality);
  g.strokeStyle = '#0b4f9c'; g.lineWidth = 2; g.beginPath();
  state.quality.forEach((k, i) => {
    const x = (i / 59) * (c.width - 2) + 1;
    const y = c.height - 2 - (k / max) * (c.height - 4);
    if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
  });
  g.stroke();
}

// ---- contacts ----

async function loadContacts() {
  try {
    const { data } = await api('GET', '/api/v1/contacts', undefined, state.mcsToken);
    state.contacts = (data && data.contacts) || [];
    renderContacts();
  } catch (e) { alertMsg('Could not load contacts: ' + e.message); }
}

function renderContacts() {
  const q = $('contact-search').value.trim().toLowerCase();
  const ul = $('contacts');
  ul.textContent = '';
  const list = state.contacts.filter((c) => !q || (c.name || '').toLowerCase().includes(q) || (c.number || '').includes(q));
  if (list.length === 0) {
    const li = document.createElement('li');
    li.textContent = q ? 'No contact matches.' : 'No contacts yet.';
    ul.appendChild(li);
    return;
  }
  for (const c of list) {
    const li = document.createElement('li');
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = c.name || c.number;
    const sub = document.createElement('span');
    sub.className = 'sub';
    sub.textContent = c.number || '';
    who.appendChild(sub);
    li.appendChild(who);
    const name = c.name || c.number;
    li.appendChild(button('Call ' + name, 'go', () => placeCall(c.number)));
    li.appendChild(button('Edit ' + name, 'plain', () => editContact(c)));
    li.appendChild(button('Delete ' + name, 'plain', () => deleteContact(c)));
    ul.appendChild(li);
  }
}
$('contact-search').addEventListener('input', renderContacts);

function button(label, cls, onclick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = cls;
  b.textContent = label;
  b.addEventListener('click', onclick);
  return b;
}

function editContact(c) {
  state.editing = c;
  $('contact-form-h').textContent = 'Edit ' + (c.name || c.number);
  $('contact-name').value = c.name || '';
  $('contact-number').value = c.number || '';
  show($('contact-cancel'), true);
  $('contact-name').focus();
}

function resetContactForm() {
  state.editing = null;
  $('contact-form-h').textContent = 'Add a contact';
  $('contact-name').value = '';
  $('contact-number').value = '';
  show($('contact-cancel'), false);
}
$('contact-cancel').addEventListener('click', resetContactForm);

$('contact-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const name = $('contact-name').value.trim();
  const number = $('contact-number').value.trim();
  try {
    if (state.editing) {
      const c = Object.assign({}, state.editing, { name, number });
      delete c.phones;
      await api('PUT', '/api/v1/contacts/' + encodeURIComponent(c.id), c, state.mcsToken, { 'If-Match': '"' + state.editing.version + '"' });
      alertMsg('Saved ' + name + '.');
    } else {
      await api('POST', '/api/v1/contacts', { name, number }, state.mcsToken);
      alertMsg('Added ' + name + '.');
    }
    resetContactForm();
  } catch (e) {
    alertMsg(e.status === 412 ? 'Someone changed this contact elsewhere; the list is reloaded, edit it again.' : 'Could not save the contact: ' + e.message);
  }
  loadContacts();
});

async function deleteContact(c) {
  if (!confirm('Delete ' + (c.name || c.number) + '?')) return;
  try {
    await api('DELETE', '/api/v1/contacts/' + encodeURIComponent(c.id), undefined, state.mcsToken, { 'If-Match': '"' + c.version + '"' });
    alertMsg('Deleted ' + (c.name || c.number) + '.');
  } catch (e) {
    alertMsg(e.status === 412 ? 'Someone changed this contact elsewhere; the list is reloaded.' : 'Could not delete: ' + e.message);
  }
  loadContacts();
}

// ---- history ----

function renderHistory(calls) {
  const ul = $('history');
  ul.textContent = '';
  if (calls.length === 0) {
    const li = document.createElement('li');
    li.textContent = 'No calls yet.';
    ul.appendChild(li);
    return;
  }
  for (const c of calls) {
    const li = document.createElement('li');
    const who = document.createElement('span');
    who.className = 'who';
    const what = c.direction === 'in' ? (c.answered ? 'Call from ' : 'Missed call from ') : 'Call to ';
    who.textContent = what + c.other;
    const sub = document.createElement('span');
    sub.className = 'sub';
    const when = new Date(c.started);
    sub.textContent = when.toLocaleString() + (c.answered ? ', ' + c.seconds + ' s' : ', not answered');
    who.appendChild(sub);
    li.appendChild(who);
    li.appendChild(button('Call back ' + c.other, 'plain', () => placeCall(c.other)));
    ul.appendChild(li);
  }
}

// ---- operator view (staff, read-only) ----

function fillTable(id, rows) {
  const tb = $(id).tBodies[0];
  tb.textContent = '';
  const cols = $(id).tHead.rows[0].cells.length;
  if (rows.length === 0) {
    const tr = tb.insertRow();
    const td = tr.insertCell();
    td.colSpan = cols;
    td.textContent = 'None';
    return;
  }
  for (const r of rows) {
    const tr = tb.insertRow();
    for (const v of r) tr.insertCell().textContent = v == null ? '' : String(v);
  }
}

const when = (t) => (t ? new Date(t).toLocaleTimeString() : '');

async function refreshOperator() {
  clearTimeout(state.opTimer);
  if (!state.staff) return;
  try {
    const { data } = await api('GET', '/web/operator', undefined, state.zdialToken);
    $('op-updated').textContent = 'Node ' + data.node + ', updated ' + when(data.at) + '.';
    fillTable('op-regs', data.registrations.map((r) => [r.number, r.device_kind ? r.device_kind + ' ' + r.device_id : r.device_id, r.transport, r.source, when(r.since), when(r.expires)]));
    fillTable('op-calls', data.calls.map((c) => [c.from, c.to, c.answered_at ? when(c.answered_at) : 'ringing',
      (c.streams || []).map((s) => s.leg + ' ' + s.media + ': ' + s.packets + ', ' + s.lost + ', ' + s.jitter_ms.toFixed(1) + ' ms').join('; ')]));
    fillTable('op-queue', data.queue.map((q) => [q.direction, q.caller, q.dialed, when(q.queued_at), q.state]));
    fillTable('op-terps', data.interpreters.map((a) => [a.ca_id, a.state.replace('_', ' '), when(a.since)]));
    fillTable('op-records', data.records.map((r) => [r.from, r.to, r.direction ? 'relay ' + r.direction + (r.ca_id ? ' (CA ' + r.ca_id + ')' : '') : 'point to point',
      new Date(r.started_at).toLocaleString(), r.answered ? r.seconds + ' s' : 'not answered', r.end_reason]));
  } catch (e) {
    alertMsg('The operator view could not be read: ' + e.message);
  }
  state.opTimer = setTimeout(refreshOperator, 3000);
}

// ---- start ----

(async function init() {
  showScreen('signin');
  const tok = sessionStorage.getItem('z5-zdial');
  const num = sessionStorage.getItem('z5-number');
  if (tok && num) {
    state.zdialToken = tok;
    try { await selectNumber(num); return; } catch (e) { sessionStorage.clear(); showScreen('signin'); }
  }
  setStatus('Signed out');
})();
