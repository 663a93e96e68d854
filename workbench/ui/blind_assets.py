"""The Blind A/B tab's style and the rater page's script: one transport playing A, B and the reference.

The player follows webMUSHRA's seamless switching: the page fetches a clip the first
time the rater asks for it (so the server's fetch count means "asked to hear it"),
decodes it with the Web Audio API, and plays A and B from one clock with a gain per
source; switching fades one source out and the other in over 5 ms at the same
position, so the rater compares the same syllable. The transport has play/pause, a
position bar (click to seek) and loop. The reference recording plays on its own,
from its start.

Keys work whatever was clicked last (no ``<audio>`` element takes the focus): ``A`` /
``B`` play or switch, ``Space`` pause, ``L`` loop, ``R`` reference, ``1`` / ``2`` / ``0``
vote; ``Esc`` leaves a text box. The page tells the server when each slot starts and
stops playing (hidden components ``#wb-audio-a`` / ``#wb-audio-b`` carry the clip URLs
and fire ``play`` / ``pause`` / ``stop`` events), for listening times and the play gate.
"""

from __future__ import annotations

STYLE = """
<style>
/* One trial fits a 1440x900 screen without scrolling (question, transport, reasons, comment,
   votes) and, on a 390x844 phone, "Saved", the transport and the votes fit together: hence
   the tight gaps, the unpadded HTML blocks and the reasons beside the comment. */
#wb-blind {max-width: 980px; margin: 0 auto; gap: 10px;}
#wb-style {display: none !important;}  /* holds only the style and the script: no empty gap */
#wb-trial {gap: 8px;}
#wb-trial .html-container {padding: 0 !important;}
#wb-blind .wb-progress {margin: 0;}
#wb-blind .wb-progress-row {display: flex; justify-content: space-between; gap: 1em; margin-bottom: 4px;}
#wb-blind .wb-progress-title {opacity: .75;}
#wb-blind .wb-bar {height: 6px; border-radius: 3px; background: var(--neutral-200, #e5e7eb); overflow: hidden;}
#wb-blind .wb-bar > div {height: 100%; background: var(--color-accent, #f97316); transition: width .3s;}
#wb-question-text {font-size: 1.3rem; font-weight: 600; text-align: center; margin: 4px 0 0; line-height: 1.3;}
#wb-text {text-align: center; font-style: italic; opacity: .85;}
#wb-blind .wb-hidden {display: none !important;}
#wb-blind .wb-player {display: flex; flex-direction: column; gap: 8px; padding: 10px;
  border: 1px solid var(--border-color-primary, #e5e7eb); border-radius: 10px;}
#wb-blind .wb-sources {display: flex; gap: 10px; justify-content: center;}
#wb-blind .wb-src {flex: 1 1 0; max-width: 260px; min-height: 60px; font-size: 2rem; font-weight: 700; margin: 0;
  border-radius: 10px; border: 2px solid var(--border-color-primary, #d1d5db);
  background: var(--background-fill-secondary, #f9fafb); color: inherit; cursor: pointer;}
#wb-blind .wb-src.wb-ref {font-size: 1.05rem; font-weight: 600; max-width: 150px;}
#wb-blind .wb-src.wb-active {border-color: var(--color-accent, #f97316);
  box-shadow: 0 0 0 3px var(--color-accent-soft, #fed7aa);}
#wb-blind .wb-src.wb-heard::after {content: " ✓"; font-size: 1rem; vertical-align: middle; opacity: .7;}
#wb-blind .wb-transport {display: flex; align-items: center; gap: 10px;}
#wb-blind .wb-transport button {min-width: 48px; min-height: 40px; font-size: 1.2rem; border-radius: 8px;
  border: 1px solid var(--border-color-primary, #d1d5db); background: var(--background-fill-primary, #fff);
  color: inherit; cursor: pointer;}
#wb-blind .wb-seek {flex: 1; height: 14px; border-radius: 7px; background: var(--neutral-200, #e5e7eb);
  cursor: pointer; overflow: hidden;}
#wb-blind .wb-seek > div {height: 100%; width: 0; background: var(--color-accent, #f97316);}
#wb-blind .wb-time {font-variant-numeric: tabular-nums; min-width: 8.5em; text-align: right;}
#wb-blind .wb-keys {font-size: .9rem; opacity: .8;}
#wb-blind .wb-player-msg {color: var(--error-text-color, #b91c1c); min-height: 0;}
#wb-blind .wb-player-msg:empty {display: none;}
/* reason tags as compact chips */
#wb-reasons .wrap {gap: 6px;}
#wb-reasons label {padding: 4px 10px !important;}
#wb-vote-a, #wb-vote-b, #wb-vote-none {min-height: 54px; font-size: 1.15rem;}
#wb-blind kbd {border: 1px solid var(--neutral-300, #ccc); border-bottom-width: 2px; border-radius: 4px;
  padding: 0 .35em; font-size: .9em;}
#wb-blind .wb-gate {text-align: center; min-height: 1.5em;}
#wb-blind .wb-status {min-height: 1.5em; align-self: center;}
#wb-picker {align-items: end;}
#wb-picker button {align-self: end; min-height: 42px;}
#wb-done {text-align: center; padding: 2em 0;}
#wb-instructions {max-width: 640px; margin: 0 auto;}
/* the admin form's checkboxes: four on a line, two on a phone (Gradio lets them shrink to nothing) */
#wb-admin-options .block {min-width: min(150px, 100%) !important;}
@media (max-width: 640px) {
  #wb-blind .wb-keys {display: none;}
  #wb-blind .wb-player {padding: 8px; gap: 6px;}
  #wb-blind .wb-src {min-height: 52px; font-size: 1.7rem;}
  #wb-blind .wb-time {min-width: 0; font-size: .85rem;}
  #wb-question-text {font-size: 1.12rem;}
  #wb-blind .wb-progress-row {font-size: .9rem;}
  #wb-why .form {flex-direction: column;}  /* Gradio puts both in one form block: stack them */
  #wb-reasons label {padding: 2px 8px !important; font-size: .9rem;}
  #wb-votes {display: grid !important; grid-template-columns: 1fr 1fr; gap: 8px;}
  #wb-votes > * {min-width: 0 !important;}
  #wb-vote-none {grid-column: 1 / span 2; order: 3; min-height: 40px;}
  #wb-vote-a, #wb-vote-b {min-height: 50px;}
  #wb-after {flex-wrap: wrap;}
  #wb-after > *, #wb-why .form > * {flex: 1 1 auto !important; min-width: 0 !important; width: 100%;}
}
</style>
"""

#: the player's markup (static; the script fills it in)
PLAYER_HTML = """
<div class="wb-player" id="wb-player-box">
  <div class="wb-sources">
    <button type="button" class="wb-src wb-ref" id="wb-play-ref" hidden>Reference</button>
    <button type="button" class="wb-src" id="wb-play-a" aria-label="Play A">A</button>
    <button type="button" class="wb-src" id="wb-play-b" aria-label="Play B">B</button>
  </div>
  <div class="wb-transport">
    <button type="button" id="wb-toggle" aria-label="Play or pause">▶</button>
    <div class="wb-seek" id="wb-seek" role="slider" aria-label="Position"><div></div></div>
    <span class="wb-time" id="wb-time">0:00.0 / 0:00.0</span>
    <label><input type="checkbox" id="wb-loop"> Loop</label>
  </div>
  <div class="wb-keys">Keys: <kbd>A</kbd> / <kbd>B</kbd> play; switching keeps the position ·
    <kbd>Space</kbd> pause · <kbd>L</kbd> loop · <kbd>R</kbd> reference<br>
    Vote: <kbd>1</kbd> A is better · <kbd>2</kbd> B is better · <kbd>0</kbd> no preference ·
    <kbd>Esc</kbd> leaves the comment box</div>
  <div class="wb-player-msg" id="wb-player-msg"></div>
</div>
"""

#: a hidden holder of one served clip's URL (A, B or the reference) that fires play events
SLOT_TEMPLATE = '<span data-url="${value}"></span>'


def slot_js(slot: str) -> str:
    """``js_on_load`` of a slot holder: lets the player fire this component's events."""
    return f"window.__wbSlots = window.__wbSlots || {{}}; window.__wbSlots[{slot!r}] = (ev) => trigger(ev);"


#: the player and the keys, installed once per page
PLAYER_JS = r"""
if (!window.__wbBlind) {
  window.__wbBlind = true;
  const byId = (id) => document.getElementById(id);
  const visible = (el) => el && el.offsetParent !== null;
  const click = (id) => { const b = byId(id); if (visible(b) && !b.disabled) b.click(); };
  const HOLDER = {A: '#wb-audio-a', B: '#wb-audio-b', R: '#wb-ref'};
  const urlOf = (s) => {
    const el = document.querySelector(HOLDER[s] + ' [data-url]');
    return el ? (el.getAttribute('data-url') || '') : '';
  };
  const fmt = (t) => { t = Math.max(0, t || 0); const m = Math.floor(t / 60); const s = t - 60 * m;
    return m + ':' + (s < 10 ? '0' : '') + s.toFixed(1); };
  const P = window.__wbPlayer = {ctx: null, urls: {A: '', B: '', R: ''}, buf: {}, pending: {}, nodes: {},
    gains: {}, active: null, playing: false, startAt: 0, offset: 0, loop: false, refNode: null, heard: {},
    error: '', starts: []};
  P.audioCtx = () => {
    if (!P.ctx) P.ctx = new (window.AudioContext || window.webkitAudioContext)();
    if (P.ctx.state === 'suspended') P.ctx.resume();
    return P.ctx;
  };
  P.send = (s, ev) => { const f = window.__wbSlots && window.__wbSlots[s]; if (f) f(ev); };
  P.stopNodes = () => {
    for (const s of Object.keys(P.nodes)) { try { P.nodes[s].stop(); } catch (e) {} }
    P.nodes = {}; P.gains = {};
  };
  P.stopRef = () => { if (P.refNode) { try { P.refNode.stop(); } catch (e) {} } P.refNode = null; };
  P.sync = () => {  // a new trial: new URLs; forget the old clips
    const now = {A: urlOf('A'), B: urlOf('B'), R: urlOf('R')};
    if (now.A === P.urls.A && now.B === P.urls.B && now.R === P.urls.R) return;
    const next = !!P.urls.A && !!now.A;  // the next trial, not the first
    P.stopNodes(); P.stopRef();
    Object.assign(P, {urls: now, buf: {}, pending: {}, active: null, playing: false, offset: 0, heard: {},
      error: ''});
    P.render();
    // the next trial: bring "Saved" to the top when it is above the screen or the vote buttons are
    // below it (a phone), so the message, the transport and the votes are all in view; checked
    // again while the "Saved" row and the new trial settle (they can arrive after the clips)
    const keep = () => {
      const top = byId('wb-after'), votes = byId('wb-votes');
      if (!top) return;
      const y = top.getBoundingClientRect().top;
      const low = !!votes && votes.getBoundingClientRect().bottom > window.innerHeight;
      if (y < 0 || (low && y > 12)) window.scrollBy(0, y - 12);
    };
    if (next) [0, 200, 600].forEach((ms) => setTimeout(keep, ms));
  };
  P.load = (s) => {
    if (P.buf[s]) return Promise.resolve(P.buf[s]);
    const url = P.urls[s];
    if (!url) return Promise.reject(new Error('no clip'));
    if (!P.pending[s]) {
      P.pending[s] = fetch(url, {cache: 'no-store', credentials: 'same-origin'})
        .then((r) => { if (!r.ok) throw new Error('HTTP ' + r.status); return r.arrayBuffer(); })
        .then((data) => P.audioCtx().decodeAudioData(data))
        .then((b) => { if (P.urls[s] === url) P.buf[s] = b; return b; })
        .catch((e) => {
          if (P.urls[s] === url) {
            P.pending[s] = null;
            P.error = 'This clip could not be loaded. Reload the page to continue where you left off.';
            P.render();
          }
          throw e;
        });
    }
    return P.pending[s];
  };
  P.duration = () => Math.max(0, ...['A', 'B'].map((s) => (P.buf[s] ? P.buf[s].duration : 0)));
  P.position = () => (P.playing ? P.offset + (P.ctx.currentTime - P.startAt) : P.offset);
  P.startNode = (s, pos, when) => {
    const b = P.buf[s];
    if (!b || pos >= b.duration) return;
    const g = P.ctx.createGain(), n = P.ctx.createBufferSource();
    n.buffer = b; g.gain.value = s === P.active ? 1 : 0;
    n.connect(g); g.connect(P.ctx.destination);
    n.start(when, pos);
    P.nodes[s] = n; P.gains[s] = g;
    // where each source started, on the audio clock (tests check a switch keeps the position)
    P.starts.push({slot: s, at: when || P.ctx.currentTime, offset: pos});
    if (P.starts.length > 50) P.starts.shift();
  };
  P.startAll = (pos) => {
    P.stopNodes();
    P.startAt = P.ctx.currentTime; P.offset = pos; P.playing = true;
    for (const s of ['A', 'B']) P.startNode(s, pos, P.startAt);
  };
  P.play = async (s) => {  // play A or B; while the other plays, switch at the same position
    P.sync();
    P.audioCtx();
    P.stopRef();
    try { await P.load(s); } catch (e) { return; }
    if (P.playing && P.active === s) { P.pause(); return; }
    const before = P.playing ? P.active : null;
    P.active = s;
    if (!P.playing) {
      let pos = P.offset;
      if (pos >= P.duration() - 0.02) pos = 0;
      P.startAll(pos);
    } else {
      if (!P.nodes[s]) P.startNode(s, P.position(), 0);
      const t = P.ctx.currentTime;
      for (const k of ['A', 'B']) {
        if (!P.gains[k]) continue;
        const g = P.gains[k].gain;
        g.cancelScheduledValues(t); g.setValueAtTime(g.value, t); g.linearRampToValueAtTime(k === s ? 1 : 0, t + 0.005);
      }
    }
    P.heard[s] = true;
    if (before && before !== s) P.send(before, 'pause');
    if (before !== s) P.send(s, 'play');
    P.render();
  };
  P.pause = () => {
    if (!P.playing) return;
    P.offset = P.position(); P.stopNodes(); P.playing = false;
    P.send(P.active, 'pause'); P.render();
  };
  P.toggle = () => { if (P.playing) P.pause(); else P.play(P.active || 'A'); };
  P.seek = (frac) => {
    const pos = Math.max(0, Math.min(1, frac)) * P.duration();
    if (P.playing) P.startAll(pos); else P.offset = pos;
    P.render();
  };
  P.playRef = async () => {
    P.sync();
    P.audioCtx();
    if (P.refNode) { P.stopRef(); P.render(); return; }
    if (P.playing) P.pause();
    let b;
    try { b = await P.load('R'); } catch (e) { return; }
    const n = P.ctx.createBufferSource();
    n.buffer = b; n.connect(P.ctx.destination);
    n.onended = () => { if (P.refNode === n) { P.refNode = null; P.render(); } };
    n.start(); P.refNode = n; P.render();
  };
  P.state = () => ({active: P.active, playing: P.playing, position: P.position(), duration: P.duration(),
    loop: P.loop, reference: !!P.refNode});
  P.render = () => {
    const ref = byId('wb-play-ref');
    if (ref) { ref.hidden = !P.urls.R; ref.classList.toggle('wb-active', !!P.refNode); }
    for (const s of ['A', 'B']) {
      const b = byId('wb-play-' + s.toLowerCase());
      if (!b) continue;
      b.classList.toggle('wb-active', P.playing && P.active === s);
      b.classList.toggle('wb-heard', !!P.heard[s]);
    }
    const t = byId('wb-toggle');
    if (t) t.textContent = P.playing ? '❚❚' : '▶';
    const loop = byId('wb-loop');
    if (loop) loop.checked = P.loop;
    const msg = byId('wb-player-msg');
    if (msg) msg.textContent = P.error;
    P.renderTime();
  };
  P.renderTime = () => {
    const d = P.duration(), pos = Math.min(P.position(), d);
    const time = byId('wb-time');
    if (time) time.textContent = fmt(pos) + ' / ' + fmt(d);
    const bar = document.querySelector('#wb-seek > div');
    if (bar) bar.style.width = (d ? (100 * pos) / d : 0).toFixed(2) + '%';
  };
  setInterval(() => {
    P.sync();
    if (P.playing && P.position() >= P.duration()) {
      if (P.loop) P.startAll(0);
      else { P.stopNodes(); P.playing = false; P.offset = 0; P.send(P.active, 'stop'); P.render(); }
    }
    P.renderTime();
  }, 50);
  const CONTROLS = '#wb-play-a, #wb-play-b, #wb-play-ref, #wb-toggle, #wb-seek, #wb-loop';
  document.addEventListener('click', (e) => {
    const t = e.target instanceof Element ? e.target.closest(CONTROLS) : null;
    if (!t) return;
    if (t.id === 'wb-play-a') P.play('A');
    else if (t.id === 'wb-play-b') P.play('B');
    else if (t.id === 'wb-play-ref') P.playRef();
    else if (t.id === 'wb-toggle') P.toggle();
    else if (t.id === 'wb-loop') { P.loop = t.checked; P.render(); }
    else if (t.id === 'wb-seek') { const r = t.getBoundingClientRect(); P.seek((e.clientX - r.left) / r.width); }
  });
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    const t = e.target;
    // keys type into text boxes; a ticked reason checkbox keeps focus but takes no text
    const typing = t && (t.tagName === 'TEXTAREA' || t.isContentEditable ||
      (t.tagName === 'INPUT' && !['checkbox', 'radio', 'button'].includes(t.type)));
    if (typing) {
      if (e.key === 'Escape') t.blur();
      return;
    }
    if (!visible(byId('wb-trial'))) return;
    const k = e.key.toLowerCase();
    // Space on a checkbox or a button keeps its own meaning (tick a reason, press the button)
    if (k === ' ' && t && (t.tagName === 'BUTTON' || (t.tagName === 'INPUT' && t.type !== 'text'))) return;
    const act = {'1': () => click('wb-vote-a'), '2': () => click('wb-vote-b'), '0': () => click('wb-vote-none'),
                 'a': () => P.play('A'), 'b': () => P.play('B'), 'r': () => { if (P.urls.R) P.playRef(); },
                 'l': () => { P.loop = !P.loop; P.render(); }, ' ': () => P.toggle()}[k];
    if (act) { e.preventDefault(); act(); }
  }, true);
}
"""
