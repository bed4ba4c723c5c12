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
 * and sending typed text or answer choices. When the server lists social channels
 * (GET /api/widget `channels`), a header menu lets the visitor continue on WhatsApp or
 * Messenger (POST …/link: a QR code, the app link and the code to send) and disconnect again
 * (DELETE …/link); lines from another channel are tagged with it.
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
      noConnection: 'No connection. Your message "{text}" was not sent.',
      continueOn: 'Continue in another app', linkTitle: 'Continue on {channel}',
      scanQr: 'Scan this code with your phone:', openIn: 'Open {channel}',
      sendCode: 'Or send us this code on {channel}:', validUntil: 'Valid until {time}',
      back: 'Back to the chat', disconnect: 'Disconnect {channel}', linking: 'Preparing the link…',
      qr: 'QR code for {channel}', cantLink: 'The link could not be made. Please try again.',
      cantUnlink: 'That did not work. Please try again.'
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
      noConnection: 'Keine Verbindung. Ihre Nachricht „{text}“ wurde nicht gesendet.',
      continueOn: 'In einer anderen App fortsetzen', linkTitle: 'Weiter auf {channel}',
      scanQr: 'Scannen Sie diesen Code mit Ihrem Handy:', openIn: '{channel} öffnen',
      sendCode: 'Oder senden Sie uns diesen Code auf {channel}:', validUntil: 'Gültig bis {time}',
      back: 'Zurück zum Chat', disconnect: '{channel} trennen', linking: 'Link wird vorbereitet …',
      qr: 'QR-Code für {channel}',
      cantLink: 'Die Verknüpfung hat nicht geklappt. Bitte versuchen Sie es erneut.',
      cantUnlink: 'Das hat nicht geklappt. Bitte versuchen Sie es erneut.'
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
      noConnection: 'Sem conexão. Sua mensagem "{text}" não foi enviada.',
      continueOn: 'Continuar em outro app', linkTitle: 'Continuar no {channel}',
      scanQr: 'Escaneie este código com o celular:', openIn: 'Abrir {channel}',
      sendCode: 'Ou envie este código para nós no {channel}:', validUntil: 'Válido até {time}',
      back: 'Voltar ao chat', disconnect: 'Desconectar {channel}', linking: 'Preparando o link…',
      qr: 'Código QR para {channel}',
      cantLink: 'Não foi possível criar o link. Tente novamente.',
      cantUnlink: 'Não funcionou. Tente novamente.'
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
      noConnection: 'Sin conexión. Tu mensaje "{text}" no se envió.',
      continueOn: 'Continuar en otra app', linkTitle: 'Continuar en {channel}',
      scanQr: 'Escanea este código con tu móvil:', openIn: 'Abrir {channel}',
      sendCode: 'O envíanos este código por {channel}:', validUntil: 'Válido hasta las {time}',
      back: 'Volver al chat', disconnect: 'Desconectar {channel}', linking: 'Preparando el enlace…',
      qr: 'Código QR para {channel}',
      cantLink: 'No se pudo crear el enlace. Inténtalo de nuevo.',
      cantUnlink: 'No funcionó. Inténtalo de nuevo.'
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
      noConnection: 'Pas de connexion. Votre message « {text} » n’a pas été envoyé.',
      continueOn: 'Continuer dans une autre appli', linkTitle: 'Continuer sur {channel}',
      scanQr: 'Scannez ce code avec votre téléphone :', openIn: 'Ouvrir {channel}',
      sendCode: 'Ou envoyez-nous ce code sur {channel} :', validUntil: 'Valable jusqu’à {time}',
      back: 'Retour au chat', disconnect: 'Déconnecter {channel}', linking: 'Préparation du lien…',
      qr: 'Code QR pour {channel}',
      cantLink: 'Le lien n’a pas pu être créé. Veuillez réessayer.',
      cantUnlink: 'Cela n’a pas fonctionné. Veuillez réessayer.'
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

  var SVG_NS = 'http://www.w3.org/2000/svg';

  /** A one-path icon on a 24×24 grid, hidden from screen readers (its button has a label). */
  function drawIcon(d, size) {
    var icon = document.createElementNS(SVG_NS, 'svg');
    icon.setAttribute('viewBox', '0 0 24 24');
    icon.setAttribute('width', String(size));
    icon.setAttribute('height', String(size));
    icon.setAttribute('aria-hidden', 'true');
    icon.setAttribute('focusable', 'false');
    var shape = document.createElementNS(SVG_NS, 'path');
    shape.setAttribute('d', d);
    shape.setAttribute('fill', 'currentColor');
    icon.appendChild(shape);
    return icon;
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
  // Continue on WhatsApp, Messenger…: a disclosure button and its list, shown only when
  // the server lists linkable channels (GET /api/widget) and the conversation is active.
  var channelBtn = el('button', {
    type: 'button', class: 'channel-btn', 'aria-label': t('continueOn'), title: t('continueOn'),
    'aria-expanded': 'false', 'aria-controls': 'chat-channel-menu', hidden: ''
  });
  // A drawn "open elsewhere" arrow, not an emoji.
  channelBtn.appendChild(drawIcon(
    'M14 3h7v7h-2V6.41l-9.29 9.3-1.42-1.42L17.59 5H14V3zM5 5h6v2H5v12h12v-6h2v6a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2V7a2 2 0 0 1 2-2z',
    18));
  head.appendChild(channelBtn);
  var channelMenu = el('ul', { class: 'channel-menu', id: 'chat-channel-menu', hidden: '' });
  head.appendChild(channelMenu);
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
  // The link panel (QR code, deep link, code) takes the log's place while it is open.
  var linkPanel = el('div', {
    class: 'link-panel', id: 'chat-link-panel', role: 'region', 'aria-labelledby': 'chat-link-title',
    hidden: ''
  });
  panel.append(head, linkPanel, log, typing, answers, hint, restartBox, form);

  var bubble = null;
  if (!inline) {
    bubble = el('button', {
      type: 'button', class: 'bubble', 'aria-label': t('open'),
      'aria-expanded': 'false', 'aria-controls': 'playbook-chat-panel'
    });
    // A drawn speech bubble, not an emoji: it looks the same without an emoji font.
    bubble.appendChild(drawIcon(
      'M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z', 28));
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
    var e = r && r.json && r.json.error;
    // `{"error": {"code", "message"}}`, or a plain `{"error": "..."}`.
    return (e && (typeof e === 'string' ? e : e.message)) || fallback;
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
    updateChannelUi();
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
    // Every line from another channel than this widget's says which (the widget shows the
    // whole history, WhatsApp lines included), and so does the first line after a move back.
    if (m.channel && (m.channel !== channel || (lastChannel && m.channel !== lastChannel))) {
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
    setChannels(look.channels);
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
    channelBtn.setAttribute('aria-label', t('continueOn'));
    channelBtn.setAttribute('title', t('continueOn'));
    if (!channelMenu.hidden) renderMenu();
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
    if (body.linked !== undefined) setLinked(body.linked);
    setStatus(body.status);
  }

  function showTyping(on) {
    typing.textContent = on ? t('typing', { name: currentName }) : '';
  }

  // ---------- other channels (WhatsApp, Messenger…) ----------

  var channels = [];        // [{ channel, label }] from GET /api/widget: configured and linkable
  var linked = null;        // the app this conversation is linked to ("whatsapp"), or null
  var linkRequest = 0;      // counts link requests: only the newest one's answer is shown

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function channelLabel(c) {
    for (var i = 0; i < channels.length; i++) {
      if (channels[i].channel === c && channels[i].label) return String(channels[i].label);
    }
    return CHANNELS[c] || c;
  }

  function setChannels(list) {
    channels = (Array.isArray(list) ? list : []).filter(function (c) {
      return c && typeof c.channel === 'string' && c.channel;
    });
    updateChannelUi();
  }

  function setLinked(c) {
    linked = typeof c === 'string' && c && c !== 'web' ? c : null;
    updateChannelUi();
  }

  /** The menu button shows while the conversation is active and there is something to offer. */
  function updateChannelUi() {
    var show = !!conv && status !== 'ended' && (channels.length > 0 || !!linked);
    channelBtn.hidden = !show;
    if (!show) {
      showMenu(false);
      closeLinkPanel(false);
    } else if (!channelMenu.hidden) {
      renderMenu();
    }
  }

  var menuKey = '';

  /**
   * Linked: "Disconnect WhatsApp" only (the server links one app at a time); else the apps.
   * Rebuilt only when that changed (a status frame must not take the keyboard focus away).
   */
  function renderMenu(force) {
    var key = [lang, linked || ''].concat(channels.map(function (c) {
      return c.channel + ':' + (c.label || '');
    })).join('|');
    if (key === menuKey && !force) return;
    menuKey = key;
    var hadFocus = channelMenu.contains(root.activeElement);
    clear(channelMenu);
    var items = linked
      ? [{ text: t('disconnect', { channel: channelLabel(linked) }), run: unlink }]
      : channels.map(function (c) {
        return { text: channelLabel(c.channel), run: function () { link(c.channel); } };
      });
    items.forEach(function (item) {
      var li = el('li');
      var b = el('button', { type: 'button' }, item.text);
      b.addEventListener('click', function () {
        showMenu(false);
        item.run();
      });
      li.appendChild(b);
      channelMenu.appendChild(li);
    });
    if (hadFocus) {
      var first = channelMenu.querySelector('button');
      (first || channelBtn).focus();
    }
  }

  function showMenu(open) {
    if (open) renderMenu(true);
    channelMenu.hidden = !open;
    channelBtn.setAttribute('aria-expanded', String(open));
  }

  channelBtn.addEventListener('click', function () {
    var open = channelMenu.hidden;
    if (open) closeLinkPanel(false);
    showMenu(open);
    if (open) {
      var first = channelMenu.querySelector('button');
      if (first) first.focus();
    }
  });

  // A click elsewhere in the chat closes the menu.
  panel.addEventListener('click', function (ev) {
    if (!channelMenu.hidden && !channelMenu.contains(ev.target) && !channelBtn.contains(ev.target)) {
      showMenu(false);
    }
  });

  // Esc closes the menu, then the link panel, before it closes the chat (registered before
  // the bubble's own Esc handler, which it stops).
  panel.addEventListener('keydown', function (ev) {
    if (ev.key !== 'Escape') return;
    if (!channelMenu.hidden) {
      showMenu(false);
      channelBtn.focus();
    } else if (!linkPanel.hidden) {
      closeLinkPanel(true);
    } else {
      return;
    }
    ev.preventDefault();
    ev.stopImmediatePropagation();
  });

  function closeLinkPanel(refocus) {
    if (linkPanel.hidden) return;
    linkRequest++;          // a late answer opens nothing
    var hadFocus = linkPanel.contains(root.activeElement);
    linkPanel.hidden = true;
    panel.classList.remove('linking');
    clear(linkPanel);
    log.scrollTop = log.scrollHeight;
    if (refocus || hadFocus) (channelBtn.hidden ? input : channelBtn).focus();
  }

  // The QR code is an SVG the server drew from our own link (`qr_svg`). It still never goes
  // on the page as HTML: it is parsed as SVG (DOMParser, image/svg+xml), only drawing
  // elements are kept (no script, foreignObject, image, use…), event handlers, links and
  // url() references are dropped, and only then is the <svg> node imported into the page.
  var SVG_ELEMENTS = ['svg', 'g', 'path', 'rect', 'circle', 'polygon', 'polyline', 'line',
    'title', 'desc', 'defs'];

  function importSvg(text) {
    if (typeof text !== 'string' || !text) return null;
    if (!/<svg[^>]*\sxmlns=/.test(text)) text = text.replace(/<svg\b/, '<svg xmlns="' + SVG_NS + '"');
    var doc = new DOMParser().parseFromString(text, 'image/svg+xml');
    var svg = doc.documentElement;
    if (!svg || svg.namespaceURI !== SVG_NS || svg.localName !== 'svg' ||
      doc.getElementsByTagName('parsererror').length) return null;
    Array.prototype.slice.call(svg.getElementsByTagName('*')).concat([svg]).forEach(function (n) {
      if (n.namespaceURI !== SVG_NS || SVG_ELEMENTS.indexOf(n.localName) < 0) {
        if (n.parentNode) n.parentNode.removeChild(n);
        return;
      }
      Array.prototype.slice.call(n.attributes).forEach(function (a) {
        var name = a.name.toLowerCase();
        if (name.indexOf('on') === 0 || /href$/.test(name) || /url\s*\(|expression|@import/i.test(a.value)) {
          n.removeAttribute(a.name);
        }
      });
    });
    // Scales with its box: a viewBox from the drawn size when the server gave none.
    var w = parseFloat(svg.getAttribute('width'));
    var h = parseFloat(svg.getAttribute('height'));
    if (!svg.getAttribute('viewBox') && w > 0 && h > 0) svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h);
    svg.removeAttribute('width');
    svg.removeAttribute('height');
    return document.importNode(svg, true);
  }

  /** Only an https link is offered (wa.me, m.me…). */
  function safeUrl(s) {
    try {
      return typeof s === 'string' && new URL(s).protocol === 'https:' ? s : null;
    } catch (e) {
      return null;
    }
  }

  function showLinkError(body, text) {
    clear(body);
    body.appendChild(el('p', { class: 'link-error', role: 'alert' }, text));
  }

  function showLink(body, c, answer) {
    var name = channelLabel(c);
    clear(body);
    var qr = importSvg(answer.qr_svg);
    if (qr) {
      qr.setAttribute('role', 'img');
      qr.setAttribute('aria-label', t('qr', { channel: name }));
      qr.setAttribute('class', 'qr');
      body.appendChild(el('p', null, t('scanQr')));
      body.appendChild(qr);
    }
    var url = safeUrl(answer.url);
    if (url) {
      body.appendChild(el('a', {
        class: 'open-link', href: url, target: '_blank', rel: 'noopener noreferrer'
      }, t('openIn', { channel: name })));
    }
    if (answer.code) {
      var line = el('p', { class: 'link-code-line' }, t('sendCode', { channel: name }) + ' ');
      line.appendChild(el('code', { class: 'link-code' }, answer.code));
      body.appendChild(line);
    }
    if (typeof answer.expires_at === 'number') {
      var until = new Date(answer.expires_at).toLocaleTimeString(lang, { hour: '2-digit', minute: '2-digit' });
      body.appendChild(el('p', { class: 'link-expiry' }, t('validUntil', { time: until })));
    }
  }

  /** Asks for a link code (POST …/link) and shows the QR code, the app link and the code. */
  function link(c) {
    if (!conv || status === 'ended') return;
    var n = ++linkRequest;
    clear(linkPanel);
    var heading = el('h3', { id: 'chat-link-title' }, t('linkTitle', { channel: channelLabel(c) }));
    var body = el('div', { class: 'link-body', 'aria-live': 'polite' });
    body.appendChild(el('p', null, t('linking')));
    var back = el('button', { type: 'button', class: 'link-back' }, t('back'));
    back.addEventListener('click', function () { closeLinkPanel(true); });
    linkPanel.append(heading, body, back);
    linkPanel.hidden = false;
    panel.classList.add('linking');
    back.focus();
    api('POST', '/api/conversations/' + encodeURIComponent(conv.id) + '/link', { channel: c })
      .then(function (r) {
        if (n !== linkRequest) return;
        if (!r.ok || !r.json) {
          showLinkError(body, errorText(r, t('cantLink')));
          // Ended, or linked already: the history says which, and the menu follows.
          if (r.status === 409) catchUp().catch(function () { /* the socket will report */ });
          return;
        }
        showLink(body, c, r.json);
      }, function () {
        if (n === linkRequest) showLinkError(body, t('cantLink'));
      });
  }

  /** Disconnects the app (DELETE …/link); the server's notice joins the chat. */
  function unlink() {
    if (!conv || !linked) return;
    setHint('');
    channelBtn.focus();
    api('DELETE', '/api/conversations/' + encodeURIComponent(conv.id) + '/link').then(function (r) {
      if (r.ok) {
        var body = r.json || {};
        setLinked(null);
        // The new lines (the notice that the chat continues here), like any reply; the
        // status only when it is a conversation's.
        apply({
          messages: body.messages,
          status: ['waiting', 'queued', 'with_agent', 'ended'].indexOf(body.status) >= 0 ? body.status : undefined
        });
        return;
      }
      setHint(errorText(r, t('cantUnlink')));
      // 409: not linked (any more): the history says so.
      if (r.status === 409) catchUp().catch(function () { /* the socket will report */ });
    }, function () {
      setHint(t('cantUnlink'));
    });
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
        // A line on WhatsApp (or another app) means the visitor linked this conversation:
        // the QR code has done its job, and the menu now offers to disconnect.
        var via = data.message && data.message.channel;
        if (via && via !== 'web' && via !== channel && via !== linked) {
          setLinked(via);
          closeLinkPanel(false);
        }
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
    showMenu(false);
    closeLinkPanel(false);
    setLinked(null);
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
