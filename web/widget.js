/* playbook visitor widget.
 *
 * Embed on any page:
 *   <script src="https://chat.example.com/widget.js" data-playbook="demo" async></script>
 * adds a chat bubble in the corner. The /widget page loads the same script with
 * data-mode="inline" to show the chat full size. A site that knows who the visitor is adds
 * data-identity="PAYLOAD.SIGNATURE" (signed on its server, see docs/api.md): the bot then
 * knows their name and email, and `route owner` reaches their account owner.
 *
 * What it owns: one conversation per playbook and browser (its id and visitor token live in
 * localStorage, so a reload picks the conversation up again), the full history
 * (GET …/messages?after=N), live updates over the conversation's WebSocket with reconnects,
 * and sending typed text or answer choices.
 *
 * Safety: every text that came from a visitor, an agent or a playbook is put on the page with
 * textContent, never as HTML. The widget lives in a shadow root so the host page's styles and
 * ours don't leak into each other.
 */
(function () {
  'use strict';

  var script = document.currentScript;
  if (!script) return;
  var origin = new URL(script.src, location.href).origin;
  var params = new URLSearchParams(location.search);
  var playbook = script.getAttribute('data-playbook') || params.get('playbook') || 'demo';
  var inline = script.getAttribute('data-mode') === 'inline';
  var channel = script.getAttribute('data-channel') || 'web';
  var identity = script.getAttribute('data-identity');
  var storeKey = 'playbook-chat:' + origin + ':' + playbook;

  var CHANNELS = {
    web: 'Web', whatsapp: 'WhatsApp', messenger: 'Messenger',
    instagram: 'Instagram', email: 'Email', sms: 'SMS'
  };

  // ---------- words ----------

  // The widget's own words in the playbook's `language` (the server says it); English for
  // any other. `{name}`, `{channel}` and `{text}` are filled in.
  var WORDS = {
    en: {
      close: 'Close chat', open: 'Open chat', messages: 'Messages', answers: 'Answers',
      placeholder: 'Type your answer…', yourMessage: 'Your message', send: 'Send',
      restart: 'Start a new conversation', queued: 'Waiting for an agent…', live: 'Live chat',
      ended: 'Conversation ended', reconnecting: 'Reconnecting…', you: 'You',
      typing: '{name} is typing…', via: 'via {channel}', chatWith: 'Chat with {name}',
      position: 'You are number {n} in line.',
      cantStart: 'The chat could not start.', cantLoad: 'The chat could not load.',
      startAgain: 'The chat could not start. Please try again.',
      notThrough: 'That did not go through. Please try again.',
      noConnection: 'No connection. Your message "{text}" was not sent.'
    },
    de: {
      close: 'Chat schließen', open: 'Chat öffnen', messages: 'Nachrichten', answers: 'Antworten',
      placeholder: 'Ihre Antwort …', yourMessage: 'Ihre Nachricht', send: 'Senden',
      restart: 'Neues Gespräch beginnen', queued: 'Warten auf einen Mitarbeiter …',
      live: 'Live-Chat', ended: 'Gespräch beendet',
      reconnecting: 'Verbindung wird wiederhergestellt …', you: 'Sie',
      typing: '{name} schreibt …', via: 'über {channel}', chatWith: 'Chat mit {name}',
      position: 'Sie sind Nummer {n} in der Warteschlange.',
      cantStart: 'Der Chat konnte nicht starten.',
      cantLoad: 'Der Chat konnte nicht geladen werden.',
      startAgain: 'Der Chat konnte nicht starten. Bitte versuchen Sie es erneut.',
      notThrough: 'Das hat nicht geklappt. Bitte versuchen Sie es erneut.',
      noConnection: 'Keine Verbindung. Ihre Nachricht „{text}“ wurde nicht gesendet.'
    },
    pt: {
      close: 'Fechar chat', open: 'Abrir chat', messages: 'Mensagens', answers: 'Respostas',
      placeholder: 'Digite sua resposta…', yourMessage: 'Sua mensagem', send: 'Enviar',
      restart: 'Iniciar nova conversa', queued: 'Aguardando um atendente…',
      live: 'Chat ao vivo', ended: 'Conversa encerrada', reconnecting: 'Reconectando…',
      you: 'Você', typing: '{name} está digitando…', via: 'via {channel}',
      chatWith: 'Chat com {name}', position: 'Você é o número {n} na fila.',
      cantStart: 'Não foi possível iniciar o chat.',
      cantLoad: 'Não foi possível carregar o chat.',
      startAgain: 'Não foi possível iniciar o chat. Tente novamente.',
      notThrough: 'Não foi possível enviar. Tente novamente.',
      noConnection: 'Sem conexão. Sua mensagem "{text}" não foi enviada.'
    },
    es: {
      close: 'Cerrar chat', open: 'Abrir chat', messages: 'Mensajes', answers: 'Respuestas',
      placeholder: 'Escribe tu respuesta…', yourMessage: 'Tu mensaje', send: 'Enviar',
      restart: 'Iniciar una nueva conversación', queued: 'Esperando a un agente…',
      live: 'Chat en vivo', ended: 'Conversación finalizada', reconnecting: 'Reconectando…',
      you: 'Tú', typing: '{name} está escribiendo…', via: 'vía {channel}',
      chatWith: 'Chat con {name}', position: 'Eres el número {n} en la fila.',
      cantStart: 'No se pudo iniciar el chat.', cantLoad: 'No se pudo cargar el chat.',
      startAgain: 'No se pudo iniciar el chat. Inténtalo de nuevo.',
      notThrough: 'No se pudo enviar. Inténtalo de nuevo.',
      noConnection: 'Sin conexión. Tu mensaje "{text}" no se envió.'
    },
    fr: {
      close: 'Fermer le chat', open: 'Ouvrir le chat', messages: 'Messages', answers: 'Réponses',
      placeholder: 'Votre réponse…', yourMessage: 'Votre message', send: 'Envoyer',
      restart: 'Nouvelle conversation', queued: 'En attente d’un agent…',
      live: 'Chat en direct', ended: 'Conversation terminée', reconnecting: 'Reconnexion…',
      you: 'Vous', typing: '{name} écrit…', via: 'via {channel}',
      chatWith: 'Chat avec {name}', position: 'Vous êtes le numéro {n} dans la file.',
      cantStart: 'Le chat n’a pas pu démarrer.', cantLoad: 'Le chat n’a pas pu être chargé.',
      startAgain: 'Le chat n’a pas pu démarrer. Veuillez réessayer.',
      notThrough: 'L’envoi a échoué. Veuillez réessayer.',
      noConnection: 'Pas de connexion. Votre message « {text} » n’a pas été envoyé.'
    }
  };
  var lang = 'en';

  /** A word in the widget's language, with `{name}`-style slots filled from `fill`. */
  function t(key, fill) {
    var text = (WORDS[lang] && WORDS[lang][key]) || WORDS.en[key];
    Object.keys(fill || {}).forEach(function (k) { text = text.replace('{' + k + '}', fill[k]); });
    return text;
  }

  // ---------- DOM ----------

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    }
    if (text != null) node.textContent = String(text);
    return node;
  }

  var host = el('div', { 'data-playbook-chat': playbook });
  var target = inline && script.getAttribute('data-target')
    ? document.getElementById(script.getAttribute('data-target')) : null;
  (target || document.body).appendChild(host);
  var root = host.attachShadow({ mode: 'open' });
  root.appendChild(el('link', { rel: 'stylesheet', href: origin + '/style.css' }));

  var panel = el('section', {
    class: 'chat ' + (inline ? 'inline-chat' : 'panel'),
    id: 'playbook-chat-panel',
    'aria-label': 'Chat'
  });
  var head = el('header', { class: 'chat-head' });
  var avatar = el('img', { class: 'avatar', alt: '', hidden: '' });
  head.appendChild(avatar);
  var title = el('h2', { id: 'chat-title' }, 'Chat');
  var statusLine = el('span', { class: 'status', role: 'status' });
  var titleBox = el('div');
  titleBox.append(title, statusLine);
  head.appendChild(titleBox);
  var closeBtn = null;
  if (!inline) {
    closeBtn = el('button', { type: 'button', 'aria-label': t('close') }, '×');
    head.appendChild(closeBtn);
  }
  var log = el('ol', { class: 'log', role: 'log', 'aria-live': 'polite', 'aria-label': t('messages') });
  var typing = el('div', { class: 'typing', 'aria-live': 'polite' });
  var answers = el('div', { class: 'answers', role: 'group', 'aria-label': t('answers') });
  var hint = el('p', { class: 'hint', id: 'chat-hint', role: 'alert' });
  var form = el('form', { class: 'compose' });
  var input = el('input', {
    type: 'text', id: 'chat-input', autocomplete: 'off', maxlength: '2000',
    'aria-describedby': 'chat-hint', placeholder: t('placeholder')
  });
  var label = el('label', { for: 'chat-input', class: 'visually-hidden' }, t('yourMessage'));
  var sendBtn = el('button', { type: 'submit' }, t('send'));
  form.append(label, input, sendBtn);
  var restart = el('button', { type: 'button', class: 'restart', hidden: '' }, t('restart'));
  var restartBox = el('div', { class: 'answers' });
  restartBox.appendChild(restart);
  panel.append(head, log, typing, answers, hint, restartBox, form);

  var bubble = null;
  if (!inline) {
    bubble = el('button', {
      type: 'button', class: 'bubble', 'aria-label': t('open'),
      'aria-expanded': 'false', 'aria-controls': 'playbook-chat-panel'
    });
    // A drawn speech bubble, not an emoji: it looks the same without an emoji font.
    var svgNs = 'http://www.w3.org/2000/svg';
    var icon = document.createElementNS(svgNs, 'svg');
    icon.setAttribute('viewBox', '0 0 24 24');
    icon.setAttribute('width', '28');
    icon.setAttribute('height', '28');
    icon.setAttribute('aria-hidden', 'true');
    icon.setAttribute('focusable', 'false');
    var shape = document.createElementNS(svgNs, 'path');
    shape.setAttribute('d', 'M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z');
    shape.setAttribute('fill', 'currentColor');
    icon.appendChild(shape);
    bubble.appendChild(icon);
    panel.hidden = true;
    root.append(panel, bubble);
  } else {
    root.appendChild(panel);
  }

  // ---------- state ----------

  var conv = null;          // { id, token }
  var lastSeq = 0;
  var lastChannel = null;
  var status = null;
  var botName = 'Chat';
  var agentName = null;
  var position = null;      // the place in line while waiting for an agent
  var currentName = 'Chat';
  var ws = null;
  var retries = 0;
  var reconnectTimer = null;
  var started = false;
  var pending = 0;

  function saved() {
    try { return JSON.parse(localStorage.getItem(storeKey) || 'null'); } catch (e) { return null; }
  }
  function save(c) {
    try { localStorage.setItem(storeKey, JSON.stringify(c)); } catch (e) { /* private mode */ }
  }
  function forget() {
    try { localStorage.removeItem(storeKey); } catch (e) { /* private mode */ }
  }

  function api(method, path, body) {
    var headers = { 'Content-Type': 'application/json' };
    if (conv) headers.Authorization = 'Bearer ' + conv.token;
    return fetch(origin + path, {
      method: method, headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (res) {
      return res.text().then(function (t) {
        var json = null;
        try { json = t ? JSON.parse(t) : null; } catch (e) { json = null; }
        return { ok: res.ok, status: res.status, json: json };
      });
    });
  }

  function errorText(r, fallback) {
    return (r && r.json && r.json.error && r.json.error.message) || fallback;
  }

  // ---------- rendering ----------

  var look = {};            // the config's [widget]: accent, position, title, avatar

  function setName(name) {
    if (!name) return;
    currentName = name;
    // The configured title stands for the bot; an agent is always named.
    title.textContent = look.title && !agentName ? look.title : name;
    panel.setAttribute('aria-label', t('chatWith', { name: name }));
  }

  function setStatus(s) {
    if (!s) return;
    status = s;
    var words = {
      waiting: '', queued: t('queued'),
      with_agent: t('live'), ended: t('ended')
    };
    if (s !== 'queued') position = null;
    statusLine.textContent = (words[s] != null ? words[s] : s) +
      (s === 'queued' && position ? ' ' + t('position', { n: position }) : '');
    var ended = s === 'ended';
    input.disabled = ended;
    sendBtn.disabled = ended;
    restart.hidden = !ended;
    if (ended) clearAnswers();
  }

  /** The line under the text box; `spoken`: for screen readers only (it is in the chat). */
  function setHint(text, spoken) {
    hint.textContent = text;
    hint.classList.toggle('spoken', !!spoken);
  }

  /** The header shows who the visitor talks to: the agent while one handles the chat. */
  function showSpeaker(s, agent) {
    if (s === 'with_agent' && agent) {
      agentName = agent;
      setName(agent);
    } else if (s !== 'with_agent') {
      agentName = null;
      setName(botName);
    }
  }

  function clearAnswers() {
    // A clicked answer button disappears: keep keyboard focus in the chat, on the text box.
    var hadFocus = answers.contains(root.activeElement);
    while (answers.firstChild) answers.removeChild(answers.firstChild);
    if (hadFocus && !input.disabled) input.focus();
  }

  function showAnswers(buttons) {
    clearAnswers();
    buttons.forEach(function (label, i) {
      var b = el('button', { type: 'button' }, label);
      b.addEventListener('click', function () {
        // The buttons are disabled and then replaced: keep keyboard focus in the chat.
        input.focus();
        send({ choice: i + 1 }, label);
      });
      answers.appendChild(b);
    });
  }

  function addMessage(m) {
    if (!m || typeof m.seq !== 'number' || m.seq <= lastSeq) return;
    lastSeq = m.seq;
    var from = m.from || {};
    var role = from.role || 'bot';
    var kind = m.kind || 'say';
    var li = el('li', { class: 'msg ' + role + ' ' + kind, 'data-seq': String(m.seq) });
    var who = role === 'visitor' ? t('you') : (from.name || (role === 'system' ? '' : botName));
    var whoEl = el('span', { class: 'who' }, who);
    if (who) li.appendChild(whoEl);
    // Show the channel whenever the conversation moved to another one.
    if (m.channel && lastChannel && m.channel !== lastChannel) {
      var badge = el('span', { class: 'channel' }, t('via', { channel: CHANNELS[m.channel] || m.channel }));
      (who ? whoEl : li).appendChild(badge);
    }
    if (m.channel) lastChannel = m.channel;
    li.appendChild(el('span', { class: 'text' }, m.text == null ? '' : m.text));
    if (m.at) {
      var d = new Date(m.at);
      li.appendChild(el('time', { datetime: d.toISOString() },
        d.toLocaleTimeString(lang, { hour: '2-digit', minute: '2-digit' })));
    }
    log.appendChild(li);
    log.scrollTop = log.scrollHeight;

    // The display name is the agent's while one handles the chat, else the bot's.
    if (role === 'agent' && from.name) {
      agentName = from.name;
      setName(from.name);
    } else if (role === 'bot' && from.name && !agentName) {
      botName = from.name;
      setName(from.name);
    }
    if (role === 'visitor') {
      clearAnswers();
      setHint('');
      return;
    }
    // A question's buttons (also a re-asked one's) replace any older ones.
    if (m.buttons && m.buttons.length) showAnswers(m.buttons);
    else if (kind === 'ask' || kind === 'reprompt') clearAnswers();
    // The re-prompt after an answer that did not fit is seen once, in the chat; the text
    // box's alert repeats it for screen readers only.
    if (kind === 'reprompt') setHint(m.text || '', true);
    else if (kind === 'ask' || (m.buttons && m.buttons.length)) setHint('');
  }

  /** Switches the widget's own words to the playbook's language (`de`, `pt-BR`…). */
  /** Applies the config's look: accent colour, corner, title, avatar. */
  function applyLook(l) {
    look = l || {};
    if (look.accent) {
      [panel, bubble].forEach(function (n) {
        if (n) { n.style.setProperty('--brand', look.accent); n.style.setProperty('--visitor', look.accent); }
      });
    }
    if (look.position === 'left') {
      panel.classList.add('left');
      if (bubble) bubble.classList.add('left');
    }
    if (look.avatar) {
      avatar.src = look.avatar.charAt(0) === '/' ? origin + look.avatar : look.avatar;
      avatar.hidden = false;
    }
    setName(currentName);
  }
  api('GET', '/api/widget').then(function (r) { if (r.ok) applyLook(r.json); }, function () { /* defaults */ });

  function localize(tag) {
    var l = String(tag || 'en').toLowerCase().split('-')[0];
    if (!WORDS[l] || l === lang) return;
    lang = l;
    host.setAttribute('lang', l);
    if (closeBtn) closeBtn.setAttribute('aria-label', t('close'));
    log.setAttribute('aria-label', t('messages'));
    answers.setAttribute('aria-label', t('answers'));
    input.setAttribute('placeholder', t('placeholder'));
    label.textContent = t('yourMessage');
    sendBtn.textContent = t('send');
    restart.textContent = t('restart');
    if (bubble) bubble.setAttribute('aria-label', panel.hidden ? t('open') : t('close'));
    if (status) setStatus(status);
  }

  function apply(body) {
    if (!body) return;
    if (body.language) localize(body.language);
    (body.messages || []).forEach(addMessage);
    // The server's current display name wins over the names on older lines: the agent's
    // while one handles the chat, else the bot's.
    if (body.bot) {
      if (body.status === 'with_agent') agentName = body.bot;
      else { agentName = null; botName = body.bot; }
      setName(body.bot);
    }
    if (body.queue_position) position = body.queue_position;
    setStatus(body.status);
  }

  function showTyping(on) {
    typing.textContent = on ? t('typing', { name: currentName }) : '';
  }

  // ---------- conversation ----------

  function create() {
    var body = { playbook: playbook, channel: channel, page_url: location.href };
    if (identity) body.identity = identity;
    return api('POST', '/api/conversations', body).then(function (r) {
      if (!r.ok) throw new Error(errorText(r, t('cantStart')));
      conv = { id: r.json.conversation, token: r.json.token };
      save(conv);
      apply(r.json);
    });
  }

  function catchUp() {
    return api('GET', '/api/conversations/' + encodeURIComponent(conv.id) +
      '/messages?after=' + lastSeq).then(function (r) {
      if (r.ok) apply(r.json);
      return r;
    });
  }

  function start() {
    if (started) return;
    started = true;
    var stored = saved();
    var ready;
    if (stored && stored.id && stored.token) {
      conv = stored;
      ready = catchUp().then(function (r) {
        if (r.ok) return;
        if (r.status === 401 || r.status === 403 || r.status === 404) {
          // The server forgot this conversation (or the token): begin a new one.
          forget();
          conv = null;
          return create();
        }
        throw new Error(errorText(r, t('cantLoad')));
      });
    } else {
      ready = create();
    }
    ready.then(connect, function (e) {
      started = false;
      setHint((e && e.message) || t('startAgain'));
    });
  }

  function connect() {
    if (!conv) return;
    clearTimeout(reconnectTimer);
    if (ws) { ws.onclose = null; ws.close(); }
    var url = origin.replace(/^http/, 'ws') + '/api/conversations/' +
      encodeURIComponent(conv.id) + '/ws?token=' + encodeURIComponent(conv.token);
    var sock = new WebSocket(url);
    ws = sock;
    sock.onopen = function () {
      retries = 0;
      if (status) setStatus(status);
      // Anything said while we were away.
      catchUp().catch(function () { /* the socket will report */ });
    };
    sock.onmessage = function (ev) {
      var data;
      try { data = JSON.parse(ev.data); } catch (e) { return; }
      if (data.type === 'message') {
        addMessage(data.message);
        if (data.message && data.message.from && data.message.from.role !== 'visitor') showTyping(false);
      } else if (data.type === 'status') {
        setStatus(data.status);
        showSpeaker(data.status, data.agent);
      } else if (data.type === 'queue') {
        position = data.position;
        setStatus(status);
      } else if (data.type === 'lagged') {
        // The socket skipped frames (a burst larger than its buffer): fetch what was missed.
        catchUp().catch(function () { /* the socket will report */ });
      } else if (data.type === 'typing') {
        showTyping(true);
        setTimeout(function () { showTyping(pending > 0); }, 3000);
      }
    };
    sock.onclose = function () {
      if (ws !== sock) return;
      ws = null;
      if (status === 'ended') return;
      statusLine.textContent = t('reconnecting');
      var delay = Math.min(500 * Math.pow(2, retries++), 8000);
      reconnectTimer = setTimeout(connect, delay);
    };
  }

  function send(body, echo) {
    if (!conv || status === 'ended') return;
    body.channel = channel;
    pending++;
    showTyping(true);
    Array.prototype.forEach.call(answers.querySelectorAll('button'), function (b) { b.disabled = true; });
    return api('POST', '/api/conversations/' + encodeURIComponent(conv.id) + '/messages', body)
      .then(function (r) {
        if (r.ok) {
          apply(r.json);
        } else {
          setHint(errorText(r, t('notThrough')));
          Array.prototype.forEach.call(answers.querySelectorAll('button'), function (b) { b.disabled = false; });
          if (body.text != null && !input.value) input.value = body.text;
        }
      }, function () {
        setHint(t('noConnection', { text: echo || '' }));
        Array.prototype.forEach.call(answers.querySelectorAll('button'), function (b) { b.disabled = false; });
        if (body.text != null && !input.value) input.value = body.text;
      })
      .then(function () {
        pending--;
        showTyping(pending > 0);
      });
  }

  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = '';
    send({ text: text }, text);
  });

  restart.addEventListener('click', function () {
    forget();
    if (ws) { ws.onclose = null; ws.close(); ws = null; }
    conv = null; lastSeq = 0; lastChannel = null; status = null; agentName = null;
    while (log.firstChild) log.removeChild(log.firstChild);
    setHint('');
    restart.hidden = true;
    input.disabled = false;
    sendBtn.disabled = false;
    started = false;
    start();
    input.focus();
  });

  window.addEventListener('online', function () {
    if (conv && !ws && status !== 'ended') connect();
  });

  // ---------- bubble ----------

  function setOpen(open) {
    panel.hidden = !open;
    bubble.setAttribute('aria-expanded', String(open));
    bubble.setAttribute('aria-label', open ? t('close') : t('open'));
    try { localStorage.setItem(storeKey + ':open', open ? '1' : ''); } catch (e) { /* ignore */ }
    if (open) {
      start();
      input.focus();
    }
  }

  if (inline) {
    start();
  } else {
    bubble.addEventListener('click', function () { setOpen(panel.hidden); });
    closeBtn.addEventListener('click', function () { setOpen(false); bubble.focus(); });
    panel.addEventListener('keydown', function (ev) {
      if (ev.key === 'Escape') { setOpen(false); bubble.focus(); }
    });
    var wasOpen = false;
    try { wasOpen = localStorage.getItem(storeKey + ':open') === '1'; } catch (e) { /* ignore */ }
    if (wasOpen) setOpen(true);
    else if (saved()) start();
  }
}());
