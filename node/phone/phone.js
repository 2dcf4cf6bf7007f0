// The browser phone: JsSIP (bundled at install into jssip.js) registers the user's account at
// this node over SIP WebSocket (RFC 7118) and calls any name on the network; the node routes the
// signalling, WebRTC carries the audio straight between the two endpoints (ICE, DTLS-SRTP).
// config.json (beside this file) names the node's domain and its WebSocket port. The password is
// kept only by JsSIP in this page's memory (the browser's password manager may offer to save it).
import JsSIP from './jssip.js';

const $ = (id) => document.getElementById(id);

let config = null;
let ua = null;
let session = null;
let statsTimer = 0;

function setState(state, text) {
  const el = $('state');
  el.dataset.state = state;
  el.textContent = text;
}

/** The WebSocket URL: the page's own origin when the node serves it on the WebSocket port, else that port on the page's host. */
function wsUrl(ws) {
  const secure = ws.secure || location.protocol === 'https:';
  const host = location.hostname.includes(':') ? `[${location.hostname}]` : location.hostname;
  return `${secure ? 'wss' : 'ws'}://${host}:${ws.port}`;
}

/** What the user typed, as a SIP URI: a number dials as sip:+1555...@domain;user=phone, a bare user is of this domain. */
function targetUri(text, domain) {
  const s = text.trim();
  if (/^(sips?|tel):/i.test(s)) return s;
  if (/^\+[0-9][0-9 ().-]*$/.test(s)) return `sip:${s.replace(/[ ().-]/g, '')}@${domain};user=phone`;
  return s.includes('@') ? `sip:${s}` : `sip:${s}@${domain}`;
}

function showCall(state, text, peer) {
  const box = $('call');
  box.hidden = false;
  box.dataset.state = state;
  $('call-state').textContent = text;
  if (peer !== undefined) $('peer').textContent = peer;
  $('answer').hidden = state !== 'incoming';
  $('decline').hidden = state !== 'incoming';
  $('hangup').hidden = !(state === 'calling' || state === 'ringing' || state === 'established');
  $('dial').querySelector('button').disabled = state !== 'ended' && state !== 'idle';
}

/** Reads the call's RTP counters and the ICE pair media flows on, once a second, from the peer connection itself. */
async function readStats(pc) {
  const r = await pc.getStats();
  let inbound = null;
  let outbound = null;
  let pair = null;
  const byId = new Map();
  r.forEach((s) => {
    byId.set(s.id, s);
    if (s.type === 'inbound-rtp' && s.kind === 'audio') inbound = s;
    if (s.type === 'outbound-rtp' && s.kind === 'audio') outbound = s;
  });
  r.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId) ?? pair;
  });
  const set = (id, packets, bytes) => {
    const el = $(id);
    el.dataset.packets = String(packets);
    el.dataset.bytes = String(bytes);
    el.textContent = `${packets} packets, ${bytes} bytes`;
  };
  if (inbound) set('audio-in', inbound.packetsReceived ?? 0, inbound.bytesReceived ?? 0);
  if (outbound) set('audio-out', outbound.packetsSent ?? 0, outbound.bytesSent ?? 0);
  if (pair) {
    const l = byId.get(pair.localCandidateId);
    const rc = byId.get(pair.remoteCandidateId);
    if (l && rc) {
      const el = $('path');
      // a peer-reflexive candidate's address may be withheld (an empty string)
      el.dataset.local = `${l.address || l.ip || '?'}:${l.port}`;
      el.dataset.remote = `${rc.address || rc.ip || '?'}:${rc.port}`;
      el.textContent = `${el.dataset.local} ⇄ ${el.dataset.remote} (${l.candidateType} to ${rc.candidateType}, ${l.protocol})`;
    }
  }
}

/** The remote audio and the counters follow the peer connection once there is one (it may come later for an incoming call). */
function attach(s) {
  const hook = (pc) => {
    if (pc.__dots) return;
    pc.__dots = true;
    pc.addEventListener('track', (e) => {
      $('remote').srcObject = e.streams[0] ?? new MediaStream([e.track]);
    });
    $('stats').hidden = false;
    clearInterval(statsTimer);
    statsTimer = setInterval(() => readStats(pc).catch(() => undefined), 1000);
  };
  if (s.connection) hook(s.connection);
  s.on('peerconnection', (e) => hook(e.peerconnection));
  // our own 180 to an incoming call is progress too: only theirs means it rings there
  s.on('progress', (e) => {
    if (e.originator === 'remote') showCall('ringing', 'Ringing');
  });
  s.on('accepted', () => showCall('established', 'In call with'));
  s.on('confirmed', () => showCall('established', 'In call with'));
  const end = (why) => {
    if (session === s) session = null;
    if (s.connection) readStats(s.connection).catch(() => undefined);
    clearInterval(statsTimer);
    showCall('ended', why);
  };
  s.on('ended', (e) => end(`Call ended (${e.originator === 'local' ? 'you hung up' : e.cause === 'Terminated' || e.cause === 'BYE' ? 'they hung up' : e.cause})`));
  s.on('failed', (e) => end(`Call failed: ${e.cause}${e.message && e.message.status_code ? ` (${e.message.status_code} ${e.message.reason_phrase})` : ''}`));
}

const MEDIA = { mediaConstraints: { audio: true, video: false } };
const pcConfig = () => ({ iceServers: config.iceServers ?? [] });

function signIn(account) {
  signOut();
  const uri = `sip:${account.user}@${account.domain}`;
  ua = new JsSIP.UA({
    sockets: [new JsSIP.WebSocketInterface(wsUrl(config.websocket))],
    uri,
    authorization_user: account.user,
    password: account.password,
    register: true,
    user_agent: `DOTS browser phone (JsSIP ${JsSIP.version})`,
  });
  setState('registering', `Registering ${uri}…`);
  ua.on('registered', () => {
    setState('registered', `Registered as ${uri}: you can call and be called`);
    $('signin').hidden = true;
    $('phone').hidden = false;
    $('me').textContent = uri;
  });
  ua.on('registrationFailed', (e) => {
    const m = e.response ? `${e.response.status_code} ${e.response.reason_phrase}` : e.cause;
    setState('failed', `Registration failed: ${m}`);
    $('signin').hidden = false;
  });
  ua.on('disconnected', () => {
    if (ua) setState('failed', `Cannot reach the node's SIP WebSocket at ${wsUrl(config.websocket)} (retrying)`);
  });
  ua.on('newRTCSession', (e) => {
    if (e.originator !== 'remote') return;
    if (session) {
      e.session.terminate({ status_code: 486, reason_phrase: 'Busy Here' });
      return;
    }
    session = e.session;
    attach(session);
    showCall('incoming', 'Incoming call from', e.session.remote_identity.uri.toString());
  });
  ua.start();
}

function signOut() {
  if (!ua) return;
  const old = ua;
  ua = null;
  session?.terminate();
  old.stop();
}

async function main() {
  try {
    const r = await fetch('config.json', { cache: 'no-store' });
    config = await r.json();
  } catch (e) {
    setState('failed', `Cannot read this node's phone settings: ${e.message}`);
    return;
  }
  if (!config.websocket) {
    setState('failed', 'This node does not serve SIP over WebSocket: its runner starts it with --ws-port N (and --ws-tls for https pages)');
    return;
  }
  if (!window.RTCPeerConnection || !navigator.mediaDevices) {
    setState('failed', 'This browser cannot make calls here: WebRTC and the microphone need an https page (or localhost)');
    return;
  }
  const form = $('signin');
  form.domain.value = config.domain;
  form.hidden = false;
  setState('signed-out', 'Sign in to call');
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    signIn({ user: form.user.value.trim(), domain: form.domain.value.trim(), password: form.password.value });
  });
  $('signout').addEventListener('click', () => {
    signOut();
    $('phone').hidden = true;
    $('call').hidden = true;
    form.hidden = false;
    setState('signed-out', 'Signed out');
  });
  $('dial').addEventListener('submit', (e) => {
    e.preventDefault();
    if (!ua || session) return;
    const target = targetUri($('dial').target.value, config.domain);
    try {
      session = ua.call(target, { ...MEDIA, pcConfig: pcConfig() });
    } catch (err) {
      showCall('ended', `Cannot call: ${err.message}`, target);
      return;
    }
    attach(session);
    showCall('calling', 'Calling', target);
  });
  $('answer').addEventListener('click', () => {
    session?.answer({ ...MEDIA, pcConfig: pcConfig() });
    showCall('established', 'In call with');
  });
  $('decline').addEventListener('click', () => session?.terminate({ status_code: 603, reason_phrase: 'Decline' }));
  $('hangup').addEventListener('click', () => session?.terminate());
}

main();
