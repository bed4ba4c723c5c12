/* playbook agent inbox.
 *
 * What it owns: signing in with an agent token (kept in sessionStorage, checked with
 * GET /api/agent/me before anything else is shown), presence, the Unassigned / Mine / Closed
 * folders kept live by the agent WebSocket, one open conversation with its actions (assign,
 * reply, reassign, close), who the visitor is and how long they have waited (kept current),
 * saved replies (`/` in the reply box, or the "Saved replies" menu), the lead/deal form and
 * the list of created records, and notifications for the desk's three events.
 *
 * Safety: every text from visitors, agents or playbooks goes on the page with textContent.
 */
(function () {
  'use strict';

  var TOKEN_KEY = 'playbook-agent-token';
  var FOLDERS = ['unassigned', 'mine', 'closed'];

  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text != null) node.textContent = String(text);
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  var token = null;
  var me = null;
  var folder = 'unassigned';
  var lists = { unassigned: [], mine: [], closed: [] };
  var selected = null;   // conversation id
  var detail = null;     // its detail
  var ws = null;
  var retries = 0;
  var reconnectTimer = null;
  var refreshTimer = null;

  // ---------- API ----------

  function api(method, path, body) {
    var headers = { Authorization: 'Bearer ' + token };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    return fetch(path, {
      method: method, headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (res) {
      return res.text().then(function (t) {
        var json = null;
        try { json = t ? JSON.parse(t) : null; } catch (e) { json = null; }
        if (res.status === 401 && me) signOut('Your sign-in is no longer valid. Please sign in again.');
        return { ok: res.ok, status: res.status, json: json };
      });
    });
  }
  function errorText(r, fallback) {
    return (r && r.json && r.json.error && r.json.error.message) || fallback;
  }

  // ---------- sign in ----------

  function showSignIn(message) {
    $('app').hidden = true;
    $('who').hidden = true;
    $('signin').hidden = false;
    $('signin-error').textContent = message || '';
    $('token').focus();
  }

  function verify(candidate, fromForm) {
    token = candidate;
    return api('GET', '/api/agent/me').then(function (r) {
      if (!r.ok || !r.json) {
        token = null;
        try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* ignore */ }
        showSignIn(fromForm ? (r.status === 401 ? 'That token is not valid.' : errorText(r, 'Sign-in failed.')) : '');
        return;
      }
      me = r.json;
      try { sessionStorage.setItem(TOKEN_KEY, candidate); } catch (e) { /* ignore */ }
      showApp();
    }, function () {
      token = null;
      showSignIn('The server cannot be reached.');
    });
  }

  function showApp() {
    notificationsOffered();
    $('signin').hidden = true;
    $('token').value = '';
    $('who').hidden = false;
    $('app').hidden = false;
    var teams = me.teams && me.teams.length ? ' (' + me.teams.join(', ') + ')' : '';
    $('me-name').textContent = 'Signed in as ' + me.name + teams;
    $('presence').value = me.presence || 'offline';
    refreshFolders();
    connect();
    loadAgents();
    loadSavedReplies();
  }

  function signOut(message) {
    me = null;
    token = null;
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* ignore */ }
    if (ws) { ws.onclose = null; ws.close(); ws = null; }
    clearTimeout(reconnectTimer);
    lists = { unassigned: [], mine: [], closed: [] };
    selected = null;
    detail = null;
    renderList();
    renderDetail();
    showSignIn(message);
  }

  $('signin-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var t = $('token').value.trim();
    if (t) verify(t, true);
  });
  $('sign-out').addEventListener('click', function () { signOut(''); });

  $('presence').addEventListener('change', function () {
    var want = $('presence').value;
    api('PUT', '/api/agent/presence', { presence: want }).then(function (r) {
      if (r.ok) {
        me.presence = (r.json && r.json.presence) || want;
        toast('You are ' + me.presence + '.');
        // Only online agents are told of new chats: catch up on what came in meanwhile.
        if (me.presence === 'online') refreshFolders();
      } else {
        $('presence').value = me.presence;
        toast(errorText(r, 'Presence could not be changed.'));
      }
    });
  });

  // The reassign box suggests the other agents who are online now (only they can take a
  // conversation); the list is fetched again whenever the box gets focus, as presence changes.
  function loadAgents() {
    api('GET', '/api/agent/agents').then(function (r) {
      var dl = $('agent-names');
      clear(dl);
      if (!r.ok || !Array.isArray(r.json)) return;
      dl.dataset.loaded = 'yes';
      r.json.forEach(function (a) {
        if (!a || !a.name || (me && a.name === me.name) || a.presence !== 'online') return;
        var teams = Array.isArray(a.teams) && a.teams.length ? a.teams.join(', ') : '';
        dl.appendChild(el('option', { value: a.name, label: teams ? a.name + ' (' + teams + ')' : a.name }));
      });
    }, function () { /* the box still takes a typed name */ });
  }
  $('reassign-to').addEventListener('focus', loadAgents);

  // ---------- folders ----------

  function refreshFolders() {
    if (!me) return Promise.resolve();
    return Promise.all(FOLDERS.map(function (f) {
      return api('GET', '/api/agent/conversations?folder=' + f).then(function (r) {
        if (r.ok && Array.isArray(r.json)) lists[f] = r.json;
      });
    })).then(renderList, function () { /* shown by the socket state */ });
  }

  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(function () {
      refreshFolders();
      if (selected) loadDetail(selected);
    }, 100);
  }

  function convId(c) { return typeof c === 'string' ? c : c && (c.id || c.conversation); }

  function renderList() {
    FOLDERS.forEach(function (f) {
      var tab = $('tab-' + f);
      tab.querySelector('.count').textContent = '(' + lists[f].length + ')';
      var on = f === folder;
      tab.setAttribute('aria-selected', String(on));
      tab.tabIndex = on ? 0 : -1;
    });
    var ul = $('conv-list');
    ul.setAttribute('aria-labelledby', 'tab-' + folder);
    clear(ul);
    lists[folder].forEach(function (c) {
      var li = el('li');
      var b = el('button', { type: 'button', 'data-id': c.id });
      if (c.id === selected) b.setAttribute('aria-current', 'true');
      // Who and where first: that is what an agent picks a chat by.
      var v = c.visitor || {};
      var who = el('span', { class: 'who-line' });
      who.appendChild(el('span', { class: 'visitor-name' + (v.name ? '' : ' unknown') }, v.name || 'Visitor'));
      if (v.email) who.appendChild(el('span', { class: 'visitor-email' }, v.email));
      b.appendChild(who);
      var where = el('span', { class: 'where' });
      if (c.page_url) where.appendChild(el('span', { class: 'page-url', title: c.page_url }, shortUrl(c.page_url)));
      if (c.channel) where.appendChild(el('span', { class: 'channel-tag' }, c.channel));
      if (c.waiting_since != null) where.appendChild(waitingEl(c.waiting_since));
      if (where.firstChild) b.appendChild(where);
      b.appendChild(el('span', { class: 'last' }, c.last && c.last.text != null ? c.last.text : c.id));
      b.appendChild(el('span', { class: 'meta' },
        (c.playbook || '') + ' · ' + (c.state || '') + (c.agent ? ' · ' + c.agent : '') +
        (c.updated_at ? ' · ' + new Date(c.updated_at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '')));
      b.addEventListener('click', function () { select(c.id); });
      li.appendChild(b);
      ul.appendChild(li);
    });
    $('conv-empty').hidden = lists[folder].length > 0;
  }

  /** `https://www.acme.example/pricing?x=1` as `www.acme.example/pricing`; the full URL is the title. */
  function shortUrl(u) {
    try {
      var url = new URL(u);
      return url.host + (url.pathname === '/' ? '' : url.pathname);
    } catch (e) {
      return String(u);
    }
  }

  /** "waiting 12 s", "waiting 2 min", "waiting 1 h 5 min" since `since` (ms). */
  function waitingText(since) {
    var s = Math.max(0, Math.floor((Date.now() - since) / 1000));
    if (s < 60) return 'waiting ' + s + ' s';
    var m = Math.floor(s / 60);
    if (m < 60) return 'waiting ' + m + ' min';
    return 'waiting ' + Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
  }

  function waitingEl(since) {
    return el('span', { class: 'waiting', 'data-since': String(since) }, waitingText(since));
  }

  // The waiting times count up in place (the list is not re-rendered, so focus stays).
  setInterval(function () {
    Array.prototype.forEach.call(document.querySelectorAll('.waiting[data-since]'), function (w) {
      var t = waitingText(Number(w.getAttribute('data-since')));
      if (w.textContent !== t) w.textContent = t;
    });
  }, 1000);

  function setFolder(f) {
    folder = f;
    renderList();
  }

  Array.prototype.forEach.call(document.querySelectorAll('[role="tab"]'), function (tab) {
    tab.addEventListener('click', function () { setFolder(tab.getAttribute('data-folder')); });
    tab.addEventListener('keydown', function (ev) {
      var i = FOLDERS.indexOf(tab.getAttribute('data-folder'));
      if (ev.key === 'ArrowRight' || ev.key === 'ArrowLeft') {
        ev.preventDefault();
        var next = FOLDERS[(i + (ev.key === 'ArrowRight' ? 1 : FOLDERS.length - 1)) % FOLDERS.length];
        setFolder(next);
        $('tab-' + next).focus();
      }
    });
  });

  // ---------- one conversation ----------

  function select(id) {
    selected = id;
    $('conv-error').textContent = '';
    $('record-error').textContent = '';
    renderList();
    loadDetail(id).then(function () { $('conv-title').focus(); });
  }

  function loadDetail(id) {
    return api('GET', '/api/agent/conversations/' + encodeURIComponent(id)).then(function (r) {
      if (selected !== id) return;
      if (r.ok && r.json) {
        detail = r.json;
      } else {
        detail = null;
        $('conv-error').textContent = errorText(r, 'This conversation could not be loaded.');
      }
      renderDetail();
    });
  }

  function isClosed(d) {
    return d.state === 'closed' || d.state === 'ended' ||
      lists.closed.some(function (c) { return c.id === d.id; });
  }

  function renderMessage(m) {
    var from = m.from || {};
    var role = from.role || 'bot';
    // Each speaker looks different: the agent's side on the right (`mine`), the visitor's
    // on the left in its own colour, the bot's plain, desk notices centred and small.
    var li = el('li', { class: 'msg from-' + role + ' ' + (role === 'agent' ? 'mine ' : '') + (m.kind || 'say'), 'data-seq': String(m.seq) });
    var who = role === 'visitor' ? 'Visitor' : (from.name || role);
    var whoEl = el('span', { class: 'who' }, who);
    if (m.channel && m.channel !== 'web') whoEl.appendChild(el('span', { class: 'channel' }, 'via ' + m.channel));
    li.appendChild(whoEl);
    li.appendChild(el('span', { class: 'text' }, m.text == null ? '' : m.text));
    if (m.delivery && (m.delivery.status === 'held' || m.delivery.status === 'failed')) {
      // Not delivered on the social channel: the agent must know the visitor did not see it.
      li.appendChild(el('span', { class: 'undelivered', role: 'note' },
        (m.delivery.status === 'held' ? 'Held, not sent on ' : 'Not delivered on ') + m.channel +
        (m.delivery.error ? ': ' + m.delivery.error : '')));
    }
    if (m.buttons && m.buttons.length) {
      // The question's buttons as the visitor saw them, each on its own.
      var chips = el('span', { class: 'chips', 'aria-label': 'Buttons offered' });
      m.buttons.forEach(function (b) { chips.appendChild(el('span', { class: 'chip' }, b)); });
      li.appendChild(chips);
    }
    return li;
  }

  function appendMessage(m) {
    if (!detail || !m) return;
    var log = $('conv-log');
    if (log.querySelector('[data-seq="' + m.seq + '"]')) return;
    detail.messages = (detail.messages || []).concat([m]);
    log.appendChild(renderMessage(m));
    log.scrollTop = log.scrollHeight;
  }

  function renderDetail() {
    var d = detail;
    var log = $('conv-log');
    clear(log);
    clear($('vars'));
    clear($('visitor'));
    clear($('records'));
    var closed = !d || isClosed(d);
    var mine = !!(d && me && d.agent === me.name);
    var waiting = !!(d && !closed && (d.state ? d.state === 'unassigned' : !d.agent));
    $('assign').disabled = !waiting;
    $('reassign').disabled = !(mine && !closed);
    $('reassign-to').disabled = !(mine && !closed);
    $('close').disabled = !(mine && !closed);
    $('reply-text').disabled = !(mine && !closed);
    $('reply-send').disabled = !(mine && !closed);
    savedButton();
    $('record-create').disabled = !d;
    if (!d) {
      $('conv-title').textContent = 'Select a conversation';
      $('conv-meta').textContent = '';
      return;
    }
    $('conv-title').textContent = 'Conversation ' + d.id;
    $('conv-title').tabIndex = -1;
    $('conv-meta').textContent = 'Playbook ' + (d.playbook || '?') + ' · ' + (d.state || '?') +
      (d.agent ? ' · with ' + d.agent : ' · nobody assigned');
    (d.messages || []).forEach(function (m) { log.appendChild(renderMessage(m)); });
    log.scrollTop = log.scrollHeight;
    renderVisitor(d);
    var vars = d.variables || {};
    Object.keys(vars).sort().forEach(function (k) {
      $('vars').appendChild(el('dt', null, k));
      var v = vars[k];
      $('vars').appendChild(el('dd', null, typeof v === 'string' ? v : JSON.stringify(v)));
    });
    // Prefill the contact from what the visitor told the bot.
    if (!$('r-name').value && typeof vars.name === 'string') $('r-name').value = vars.name;
    if (!$('r-email').value && typeof vars.email === 'string') $('r-email').value = vars.email;
    (d.records || []).forEach(function (rec) { $('records').appendChild(renderRecord(rec)); });
  }

  /** Who the visitor is and where they are, at the top of the details. */
  function renderVisitor(d) {
    var dl = $('visitor');
    var v = d.visitor || {};
    function row(term, node) {
      dl.appendChild(el('dt', null, term));
      var dd = el('dd');
      if (typeof node === 'string') dd.textContent = node; else dd.appendChild(node);
      dl.appendChild(dd);
    }
    row('Name', v.name || 'unknown');
    if (v.email) row('Email', v.email);
    if (d.page_url) {
      // Only web pages become links: a page_url is the visitor's to choose.
      var link = /^https?:\/\//i.test(d.page_url)
        ? el('a', { href: d.page_url, target: '_blank', rel: 'noopener noreferrer' }, d.page_url)
        : el('span', null, d.page_url);
      row('Page', link);
    }
    if (d.channel) row('Channel', d.channel);
    if (d.started_at) row('Started', new Date(d.started_at).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' }));
    if (d.waiting_since != null) row('Waiting', waitingEl(d.waiting_since));
  }

  function renderRecord(rec) {
    // The server sends a stored record: { record: { key, owner, data: { type, title, … } } }.
    var meta = rec.record || rec;
    var data = meta.data || meta;
    var kind = String(data.type || rec.type || 'record');
    var li = el('li', { class: 'record' });
    li.appendChild(el('strong', null, kind.charAt(0).toUpperCase() + kind.slice(1) + ': '));
    li.appendChild(el('span', { class: 'title' }, data.title || data.subject || ''));
    var bits = [];
    if (data.value != null) bits.push(data.value + (data.currency ? ' ' + data.currency : ''));
    var p = data.person || {};
    ['name', 'email', 'phone'].forEach(function (k) { if (p[k]) bits.push(p[k]); });
    if (data.organization) bits.push(data.organization);
    if (meta.owner) bits.push('owner ' + meta.owner);
    if (bits.length) li.appendChild(el('span', { class: 'meta' }, ' — ' + bits.join(' · ')));
    // Where the record stands with the CRM (absent on a record just made: not tried yet).
    var d = rec.delivery;
    if (d) {
      var text = d.state === 'delivered' ? 'In the CRM'
        : d.state === 'parked' ? 'Not accepted by the CRM: ' + (d.last_error || 'no reason given')
        : d.last_error ? 'Not in the CRM yet (attempt ' + d.attempts + '): ' + d.last_error
        : 'Being sent to the CRM';
      li.appendChild(el('span', { class: 'delivery delivery-' + d.state, role: 'status' }, text));
    }
    return li;
  }

  function act(path, body, okText) {
    if (!selected) return Promise.resolve();
    $('conv-error').textContent = '';
    var id = selected;
    return api('POST', '/api/agent/conversations/' + encodeURIComponent(id) + path, body).then(function (r) {
      if (!r.ok) {
        $('conv-error').textContent = errorText(r, 'That did not work (' + r.status + ').');
      } else if (okText) {
        toast(okText);
      }
      return refreshFolders().then(function () { return loadDetail(id); }).then(function () { return r; });
    });
  }

  $('assign').addEventListener('click', function () {
    act('/assign', undefined, 'You picked up the conversation.').then(function (r) {
      if (r && r.ok) { setFolder('mine'); $('reply-text').focus(); }
    });
  });
  $('reassign').addEventListener('click', function () {
    var to = $('reassign-to').value.trim();
    if (!to) { $('conv-error').textContent = 'Type the name of an online agent.'; return; }
    act('/reassign', { to: to }, 'Reassigned to ' + to + '.').then(function (r) {
      if (r && r.ok) $('reassign-to').value = '';
    });
  });
  $('close').addEventListener('click', function () {
    act('/close', undefined, 'Conversation closed.').then(function (r) {
      if (r && r.ok) setFolder('closed');
    });
  });
  $('reply').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var text = $('reply-text').value.trim();
    if (!text || !selected) return;
    $('reply-text').value = '';
    act('/messages', { text: text }).then(function (r) {
      if (r && !r.ok) $('reply-text').value = text;
      $('reply-text').focus();
    });
  });

  $('record-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    if (!selected) return;
    var f = ev.target;
    var type = f.querySelector('input[name="type"]:checked').value;
    var val = function (id) { return $(id).value.trim(); };
    var body = { type: type, title: val('r-title') || ((type === 'deal' ? 'Deal' : 'Lead') + ' from chat') };
    if (val('r-value')) {
      var n = Number(val('r-value'));
      if (!isFinite(n) || n < 0) { $('record-error').textContent = 'The value must be a positive number.'; return; }
      body.value = n;
    }
    if (val('r-currency')) body.currency = val('r-currency').toUpperCase();
    var person = {};
    if (val('r-name')) person.name = val('r-name');
    if (val('r-email')) person.email = val('r-email');
    if (val('r-phone')) person.phone = val('r-phone');
    if (Object.keys(person).length) body.person = person;
    if (val('r-org')) body.organization = val('r-org');
    if (val('r-note')) body.note = val('r-note');
    $('record-error').textContent = '';
    var id = selected;
    api('POST', '/api/agent/conversations/' + encodeURIComponent(id) + '/records', body).then(function (r) {
      if (!r.ok) {
        $('record-error').textContent = errorText(r, 'The record could not be created (' + r.status + ').');
        return;
      }
      toast((type === 'deal' ? 'Deal' : 'Lead') + ' created: ' + body.title);
      ['r-title', 'r-value', 'r-note'].forEach(function (k) { $(k).value = ''; });
      if (selected === id) {
        if (r.json) $('records').appendChild(renderRecord(r.json));
        loadDetail(id);
      }
    });
  });

  // The visitor sees the agent typing (at most one signal every 2.5 s).
  var lastTyping = 0;
  $('reply-text').addEventListener('input', function () {
    var now = Date.now();
    if (!selected || now - lastTyping < 2500) return;
    lastTyping = now;
    api('POST', '/api/agent/conversations/' + encodeURIComponent(selected) + '/typing')
      .then(function () { /* best effort */ }, function () { /* best effort */ });
  });

  // ---------- saved replies ----------

  // `/name` in the reply box (at its start or after a space, up to the caret) offers the
  // config's saved replies whose name or text contains what follows the `/`; the menu button
  // offers all of them. Choosing one puts its text in place of the `/name`, to edit or send.
  var savedReplies = [];
  var savedShown = [];   // the replies in the open menu
  var savedActive = -1;  // the highlighted one
  var savedSlash = null; // where the `/name` being typed starts, or null (opened by the button)

  function loadSavedReplies() {
    api('GET', '/api/agent/saved_replies').then(function (r) {
      savedReplies = r.ok && Array.isArray(r.json)
        ? r.json.filter(function (x) { return x && typeof x.name === 'string' && typeof x.text === 'string'; })
        : [];
      savedButton();
    }, function () { savedReplies = []; });
  }

  /** The menu button works where the reply box does, when there is something to offer. */
  function savedButton() {
    $('saved-open').disabled = $('reply-text').disabled || !savedReplies.length;
    if ($('reply-text').disabled) closeSaved();
  }

  function slashQuery() {
    var box = $('reply-text');
    var before = box.value.slice(0, box.selectionStart == null ? box.value.length : box.selectionStart);
    var m = /(^|\s)\/([^\s\/]*)$/.exec(before);
    return m ? { start: before.length - m[2].length - 1, query: m[2].toLowerCase() } : null;
  }

  function openSaved(list, slashAt) {
    savedShown = list;
    savedSlash = slashAt;
    savedActive = list.length ? 0 : -1;
    var ul = $('saved-list');
    clear(ul);
    if (!list.length) ul.appendChild(el('li', { class: 'saved-none', role: 'option', 'aria-disabled': 'true' }, 'No saved reply matches.'));
    list.forEach(function (r, i) {
      var li = el('li', { id: 'saved-' + i, role: 'option', class: 'saved-item', 'data-name': r.name });
      li.appendChild(el('span', { class: 'saved-name' }, '/' + r.name));
      li.appendChild(el('span', { class: 'saved-text' }, r.text));
      // mousedown, not click: the reply box keeps its focus (and its caret).
      li.addEventListener('mousedown', function (ev) { ev.preventDefault(); insertSaved(i); });
      ul.appendChild(li);
    });
    ul.hidden = false;
    $('reply-text').setAttribute('aria-expanded', 'true');
    $('saved-open').setAttribute('aria-expanded', 'true');
    markActive();
  }

  function closeSaved() {
    $('saved-list').hidden = true;
    savedShown = [];
    savedActive = -1;
    $('reply-text').setAttribute('aria-expanded', 'false');
    $('reply-text').removeAttribute('aria-activedescendant');
    $('saved-open').setAttribute('aria-expanded', 'false');
  }

  function markActive() {
    Array.prototype.forEach.call($('saved-list').querySelectorAll('.saved-item'), function (li, i) {
      li.setAttribute('aria-selected', String(i === savedActive));
    });
    if (savedActive >= 0) {
      $('reply-text').setAttribute('aria-activedescendant', 'saved-' + savedActive);
      var li = $('saved-' + savedActive);
      if (li && li.scrollIntoView) li.scrollIntoView({ block: 'nearest' });
    } else {
      $('reply-text').removeAttribute('aria-activedescendant');
    }
  }

  function insertSaved(i) {
    var r = savedShown[i];
    if (!r) return;
    var box = $('reply-text');
    var caret = box.selectionStart == null ? box.value.length : box.selectionStart;
    var start = savedSlash == null ? caret : savedSlash;
    box.value = box.value.slice(0, start) + r.text + box.value.slice(caret);
    closeSaved();
    box.focus();
    var at = start + r.text.length;
    box.setSelectionRange(at, at);
  }

  function filterSaved() {
    var q = slashQuery();
    if (!q || !savedReplies.length) { closeSaved(); return; }
    openSaved(savedReplies.filter(function (r) {
      return r.name.toLowerCase().indexOf(q.query) >= 0 || r.text.toLowerCase().indexOf(q.query) >= 0;
    }), q.start);
  }

  $('reply-text').addEventListener('input', filterSaved);
  $('reply-text').addEventListener('keydown', function (ev) {
    if ($('saved-list').hidden) return;
    if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
      ev.preventDefault();
      if (!savedShown.length) return;
      var step = ev.key === 'ArrowDown' ? 1 : savedShown.length - 1;
      savedActive = (savedActive + step) % savedShown.length;
      markActive();
    } else if ((ev.key === 'Enter' || ev.key === 'Tab') && savedActive >= 0) {
      // Enter picks the reply instead of sending the `/name`.
      ev.preventDefault();
      insertSaved(savedActive);
    } else if (ev.key === 'Escape') {
      ev.preventDefault();
      closeSaved();
    }
  });
  // Leaving the reply box closes the list, except for its own button (which toggles it).
  $('reply-text').addEventListener('blur', function (ev) {
    if (ev.relatedTarget !== $('saved-open')) closeSaved();
  });
  $('saved-open').addEventListener('click', function () {
    if (!$('saved-list').hidden) { closeSaved(); return; }
    $('reply-text').focus();
    openSaved(savedReplies.slice(), null);
  });

  // ---------- notifications ----------

  function toast(text) {
    var t = el('div', { class: 'toast' }, text);
    var box = $('toasts');
    box.appendChild(t);
    while (box.childNodes.length > 3) box.removeChild(box.firstChild);
    setTimeout(function () { if (t.parentNode) t.parentNode.removeChild(t); }, 6000);
  }

  // Agents miss chats in a background tab: what needs them is also a desktop notification
  // (with permission), an optional sound, and a count in the tab's title until they look.
  var BASE_TITLE = document.title;
  var unread = 0;
  var SOUND_KEY = 'playbook-inbox-sound';
  var audio = null;

  function showUnread() {
    document.title = unread > 0 ? '(' + unread + ') ' + BASE_TITLE : BASE_TITLE;
  }

  function seen() {
    if (document.visibilityState === 'visible' && document.hasFocus()) {
      unread = 0;
      showUnread();
    }
  }
  document.addEventListener('visibilitychange', seen);
  window.addEventListener('focus', seen);

  function notificationsOffered() {
    var btn = $('notify-enable');
    btn.hidden = !('Notification' in window) || Notification.permission !== 'default';
  }
  $('notify-enable').addEventListener('click', function () {
    Notification.requestPermission().then(function () { notificationsOffered(); });
  });
  try { $('notify-sound').checked = localStorage.getItem(SOUND_KEY) === '1'; } catch (e) { /* ignore */ }
  $('notify-sound').addEventListener('change', function () {
    try { localStorage.setItem(SOUND_KEY, $('notify-sound').checked ? '1' : ''); } catch (e) { /* ignore */ }
  });

  function beep() {
    if (!$('notify-sound').checked) return;
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      var osc = audio.createOscillator();
      var gain = audio.createGain();
      osc.frequency.value = 880;
      gain.gain.value = 0.08;
      osc.connect(gain);
      gain.connect(audio.destination);
      osc.start();
      osc.stop(audio.currentTime + 0.15);
    } catch (e) { /* no audio: the other signals remain */ }
  }

  /** Tells the agent: a toast, the tab title, the desktop (if allowed), a sound (if on). */
  function alertAgent(text, id) {
    toast(text);
    if (document.visibilityState !== 'visible' || !document.hasFocus()) {
      unread += 1;
      showUnread();
    }
    if ('Notification' in window && Notification.permission === 'granted') {
      try {
        var n = new Notification('Live-chat inbox', { body: text, tag: id || undefined });
        n.onclick = function () { window.focus(); if (id) select(id); };
      } catch (e) { /* some browsers only notify from a service worker */ }
    }
    beep();
  }

  function onEvent(data) {
    var id = convId(data.conversation);
    if (data.type === 'unassigned') {
      alertAgent('New conversation waiting' + (data.conversation && data.conversation.playbook ? ' (' + data.conversation.playbook + ')' : '') + '.', id);
    } else if (data.type === 'message') {
      var m = data.message || {};
      var from = m.from || {};
      // Only what the visitor says needs the agent's attention; bot and desk lines don't.
      if (from.role === 'visitor') alertAgent('New message from the visitor: ' + (m.text || ''), id);
      if (id && id === selected) appendMessage(m);
    } else if (data.type === 'undelivered') {
      alertAgent((data.status === 'held' ? 'A message was held, not sent on ' : 'A message was not delivered on ') +
        data.channel + (data.error ? ': ' + data.error : '') + '.', id);
      if (id && id === selected) select(id);
    } else if (data.type === 'assigned') {
      var by = data.by;
      alertAgent(by && me && by !== me.name ? 'A conversation was assigned to you by ' + by + '.' : 'A conversation is now yours.', id);
    }
    scheduleRefresh();
  }

  function connect() {
    if (!token) return;
    clearTimeout(reconnectTimer);
    var url = location.origin.replace(/^http/, 'ws') + '/api/agent/ws?token=' + encodeURIComponent(token);
    var sock = new WebSocket(url);
    ws = sock;
    sock.onopen = function () {
      if (retries > 0) refreshFolders();
      retries = 0;
    };
    sock.onmessage = function (ev) {
      var data;
      try { data = JSON.parse(ev.data); } catch (e) { return; }
      onEvent(data);
    };
    sock.onclose = function () {
      if (ws !== sock || !token) return;
      ws = null;
      var delay = Math.min(500 * Math.pow(2, retries++), 8000);
      reconnectTimer = setTimeout(connect, delay);
    };
  }

  // ---------- start ----------

  var stored = null;
  try { stored = sessionStorage.getItem(TOKEN_KEY); } catch (e) { stored = null; }
  if (stored) verify(stored, false); else showSignIn('');
}());
