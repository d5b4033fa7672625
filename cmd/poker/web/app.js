/*
 * Planning poker UI — vanilla JS, no build step, no inline code (strict CSP).
 *
 * Stable selectors for browser tests (each element has id = data-testid
 * unless noted as repeated):
 *
 *   views        view-create, view-join, view-room, view-gone (+ gone-text, gone-home)
 *   create form  create-form, create-title, create-name, create-deck
 *                (values: fibonacci | tshirt | pow2 | custom), create-custom-deck,
 *                create-capacity, create-autoreveal, create-observer, create-submit
 *   join form    join-form, join-room-title, join-room-members, join-room-id,
 *                join-name, join-observer (checkbox), join-submit
 *   room header  room-title, me-name, me-role, share-link (input), copy-link (button)
 *   members      member-list, member-count;
 *                repeated li[data-testid="member"] with data-member-id,
 *                data-voted="true|false", data-leader, data-me, data-role;
 *                leader-only button[data-testid="member-remove"][data-member-id],
 *                button[data-testid="member-make-leader"][data-member-id];
 *                toggle-role (switch oneself between voter and observer)
 *   leader       leader-panel, story-input, start-voting, reveal, revote,
 *                next-story, queue-input, queue-add, queue-clear, autoreveal
 *                (checkbox), timer-seconds, timer-start, timer-stop
 *   queue        queue-view, queue-list; repeated li[data-testid="queue-item"]
 *   session      session-panel, session-status (data-status="none|voting|finished"),
 *                current-story, session-hint, vote-area, my-vote-text,
 *                countdown (hidden without one), countdown-value ("m:ss")
 *   cards        cards; repeated button[data-testid="card"][data-value],
 *                aria-pressed="true" on the selected one
 *   results      results, reveal-reason, stat-common, stat-agreement, stat-average,
 *                stat-median, stat-consensus (data-consensus="true|false"),
 *                distribution, dist-list; repeated li[data-testid="dist-bar"]
 *                with data-value, data-count; result-list;
 *                repeated li[data-testid="result-vote"] with data-member-id,
 *                data-value (the member's vote, "" if none),
 *                data-extreme ("low", "high" or "");
 *                agreed-estimate (data-estimate), leader-only estimate-form,
 *                estimate-input, record-estimate; observer-note
 *   history      history-panel, history-count, history-empty, history-list;
 *                repeated li[data-testid="history-round"] with data-round,
 *                data-estimate; export-csv, export-json
 *   misc         offline-banner (data-pending-vote while a vote waits to be resent),
 *                leave-room, connection-status (data-state="idle|connecting|
 *                live|reconnecting|offline"), error-message (role=alert),
 *                announcer (aria-live polite), home-link
 */
(function () {
  "use strict";

  var DECKS = {
    fibonacci: ["0", "1", "2", "3", "5", "8", "13", "21", "?"],
    tshirt: ["XS", "S", "M", "L", "XL", "XXL", "?"],
    pow2: ["0", "1", "2", "4", "8", "16", "32", "64", "?"]
  };
  var MESSAGES = {
    room_not_found: "This room does not exist (any more). Check the link or create a new room.",
    name_taken: "Someone in this room already uses that name. Please pick another one.",
    room_full: "This room is full. Ask the leader to make space, or create your own room.",
    room_closed: "This room has been closed.",
    busy: "The server is busy right now. Please try again in a moment.",
    shutting_down: "The server is restarting. Please try again in a moment.",
    network: "Cannot reach the server. Check your connection and try again.",
    unauthorized: "Your session for this room has expired. Please join again.",
    not_voting: "There is no voting round in progress.",
    not_leader: "Only the room leader can do that."
  };

  function $(id) { return document.getElementById(id); }

  // CONFIG is the deployment's (GET /api/config): publicUrl is the base
  // of invite links, "" for the browser's own address.
  var CONFIG = { publicUrl: "", timerMin: 5, timerMax: 3600 };
  function inviteLink(room) { return (CONFIG.publicUrl || location.origin) + "/r/" + encodeURIComponent(room); }

  // ---------- storage ----------
  function storeKey(room) { return "poker:room:" + room; }
  function loadCreds(room) {
    try { return JSON.parse(localStorage.getItem(storeKey(room)) || "null"); } catch (e) { return null; }
  }
  function saveCreds(room, creds) {
    try { localStorage.setItem(storeKey(room), JSON.stringify(creds)); } catch (e) { /* private mode */ }
  }
  function clearCreds(room) {
    try { localStorage.removeItem(storeKey(room)); } catch (e) { /* ignore */ }
  }

  // ---------- HTTP ----------
  function ApiError(status, code, message) {
    this.status = status; this.code = code; this.message = message;
  }
  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }

  // api performs a JSON request. 503 responses (busy, shutting down) and
  // network failures are retried with exponential backoff and full jitter.
  // Member commands carry one Idempotency-Key for all their attempts, so a
  // retry after a lost answer is not applied twice.
  function api(method, path, body, token, key) {
    var attempts = 4;
    key = key || (token && method !== "GET" ? newKey() : "");
    function once(n) {
      var headers = { "Accept": "application/json" };
      if (body !== undefined) headers["Content-Type"] = "application/json";
      if (token) headers["Authorization"] = "Bearer " + token;
      if (key) headers["Idempotency-Key"] = key;
      return fetch(path, {
        method: method, headers: headers, cache: "no-store",
        body: body === undefined ? undefined : JSON.stringify(body)
      }).then(function (res) {
        if (res.status === 503 && n + 1 < attempts) {
          var ra = parseFloat(res.headers.get("Retry-After")) || 0;
          return sleep(backoff(n, ra)).then(function () { return once(n + 1); });
        }
        return res.text().then(function (text) {
          var data = null;
          if (text) { try { data = JSON.parse(text); } catch (e) { data = null; } }
          if (!res.ok) {
            var code = (data && data.error) || (res.status === 401 || res.status === 403 ? "unauthorized" : "http_" + res.status);
            var e = new ApiError(res.status, code, (data && data.message) || res.statusText || "Request failed");
            e.field = data && data.field;
            throw e;
          }
          return data;
        });
      }, function () {
        if (n + 1 < attempts) return sleep(backoff(n, 0)).then(function () { return once(n + 1); });
        throw new ApiError(0, "network", MESSAGES.network);
      });
    }
    return once(0);
  }
  function newKey() {
    var b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.prototype.map.call(b, function (x) { return ("0" + x.toString(16)).slice(-2); }).join("");
  }
  function backoff(n, retryAfterSec) {
    var base = Math.max(retryAfterSec * 1000, 300 * Math.pow(2, n));
    return Math.min(base, 5000) * (0.5 + Math.random() * 0.5);
  }
  function errorKind(err) { return err && (err.code === "network" || err.status === 503) ? "conn" : "error"; }
  function messageFor(err) {
    if (err && MESSAGES[err.code]) return MESSAGES[err.code];
    return (err && err.message) || "Something went wrong.";
  }

  // ---------- small DOM helpers ----------
  function el(tag, attrs, children) {
    var n = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) {
      if (k === "text") n.textContent = attrs[k];
      else if (k === "className") n.className = attrs[k];
      else n.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) n.appendChild(c); });
    return n;
  }
  function showView(name) {
    ["create", "join", "room", "gone"].forEach(function (v) { $("view-" + v).hidden = v !== name; });
  }
  var errorTimer = null;
  // showError shows msg (kind "error", "info" which fades, or "conn": a
  // connection problem, cleared as soon as the event stream is live again).
  function showError(msg, kind) {
    var a = $("error-message");
    clearTimeout(errorTimer);
    if (!msg) { a.hidden = true; a.textContent = ""; return; }
    a.textContent = msg;
    a.setAttribute("data-kind", kind || "error");
    a.hidden = false;
    if (kind === "info") errorTimer = setTimeout(function () { a.hidden = true; }, 4000);
  }
  function announce(msg) {
    var a = $("announcer");
    a.textContent = "";
    setTimeout(function () { a.textContent = msg; }, 50);
  }
  function busy(btn, on) {
    btn.disabled = on;
    if (on) btn.setAttribute("aria-busy", "true"); else btn.removeAttribute("aria-busy");
  }
  var connState = "idle";
  function setConn(state, text) {
    var c = $("connection-status");
    c.hidden = state === "idle";
    c.setAttribute("data-state", state);
    c.querySelector(".conn-text").textContent = text;
    var changed = connState !== state;
    connState = state;
    if (state === "live") {
      var a = $("error-message");
      if (!a.hidden && a.getAttribute("data-kind") === "conn") showError("");
    }
    if (changed && S && S.state) render();
  }
  function online() { return connState === "live"; }
  function invalid(input, on) {
    if (on) { input.setAttribute("aria-invalid", "true"); input.focus(); }
    else input.removeAttribute("aria-invalid");
  }

  // ---------- routing ----------
  function roomFromPath() {
    var m = /^\/r\/([^\/?#]+)\/?$/.exec(location.pathname);
    return m ? decodeURIComponent(m[1]) : null;
  }
  function navigate(path) {
    if (location.pathname !== path) history.pushState(null, "", path);
    route();
  }
  window.addEventListener("popstate", function () { route(); });

  function route() {
    disconnect();
    showError("");
    var room = roomFromPath();
    if (!room) {
      document.title = "Planning poker";
      setConn("idle", "");
      showView("create");
      return;
    }
    var creds = loadCreds(room);
    if (creds && creds.token) enterRoom(room, creds);
    else showJoin(room);
  }

  // ---------- create ----------
  $("create-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var title = $("create-title"), name = $("create-name"), btn = $("create-submit");
    invalid(title, false); invalid(name, false);
    if (!name.value.trim()) { invalid(name, true); showError("Please enter your name."); }
    if (!title.value.trim()) { invalid(title, true); showError("Please give the room a title."); }
    if (!title.value.trim() || !name.value.trim()) return;
    showError("");
    busy(btn, true);
    var deck = DECKS[$("create-deck").value] || DECKS.fibonacci;
    if ($("create-deck").value === "custom") {
      var custom = $("create-custom-deck");
      deck = custom.value.split(/[\s,]+/).filter(Boolean);
      invalid(custom, false);
      if (deck.length < 2 || deck.length > 20) {
        invalid(custom, true); busy(btn, false);
        showError("A custom deck needs between 2 and 20 cards, separated by spaces or commas.");
        return;
      }
    }
    var cap = $("create-capacity"), capacity = parseInt(cap.value, 10);
    invalid(cap, false);
    if (cap.value !== "" && !(capacity >= 2 && capacity <= 100)) {
      invalid(cap, true); busy(btn, false);
      showError("Seats must be between 2 and 100.");
      return;
    }
    var role = $("create-observer").checked ? "observer" : "voter";
    var body = { title: title.value.trim(), leader: name.value.trim(), deck: deck, role: role, autoReveal: $("create-autoreveal").checked };
    if (capacity) body.capacity = capacity;
    api("POST", "/api/rooms", body)
      .then(function (res) {
        saveCreds(res.room, { member: res.member, token: res.token, name: name.value.trim() });
        navigate("/r/" + encodeURIComponent(res.room));
      }, function (err) {
        showError(messageFor(err));
        var field = { deck: "create-custom-deck", capacity: "create-capacity", title: "create-title", leader: "create-name" }[err.field];
        if (field && !$(field).closest("[hidden]")) invalid($(field), true);
      })
      .then(function () { busy(btn, false); });
  });

  function customDeckShown() {
    var on = $("create-deck").value === "custom";
    $("custom-deck-field").hidden = !on;
  }
  $("create-deck").addEventListener("change", function () {
    customDeckShown();
    if (!$("custom-deck-field").hidden) $("create-custom-deck").focus();
  });

  // ---------- join ----------
  var joinRoom = null;
  // showJoin asks for a name only once the link is known to work: the
  // room's public state gives its title; a dead or closed link is refused
  // before anyone types.
  function showJoin(room) {
    joinRoom = room;
    document.title = "Join room · Planning poker";
    setConn("idle", "");
    $("join-room-id").textContent = room;
    $("join-room-title").textContent = "the room";
    $("join-room-members").textContent = "";
    api("GET", "/api/rooms/" + encodeURIComponent(room)).then(function (v) {
      if (joinRoom !== room) return;
      $("join-room-title").textContent = "“" + (v.title || "the room") + "”";
      document.title = "Join " + (v.title || "room") + " · Planning poker";
      var n = (v.members || []).length;
      $("join-room-members").textContent = " (" + n + (n === 1 ? " member" : " members") + " so far)";
      showView("join");
      $("join-name").focus();
    }, function (err) {
      if (joinRoom !== room) return;
      if (err.status === 404 || err.code === "room_not_found") return gone(room, MESSAGES.room_not_found);
      showView("join"); // the server is unreachable: let the join itself say so
      showError(messageFor(err));
      $("join-name").focus();
    });
  }
  $("join-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var name = $("join-name"), btn = $("join-submit"), room = joinRoom;
    invalid(name, false);
    if (!name.value.trim()) { invalid(name, true); showError("Please enter your name."); return; }
    showError("");
    busy(btn, true);
    var role = $("join-observer").checked ? "observer" : "voter";
    api("POST", "/api/rooms/" + encodeURIComponent(room) + "/members", { name: name.value.trim(), role: role })
      .then(function (res) {
        saveCreds(room, { member: res.member, token: res.token, name: name.value.trim() });
        enterRoom(room, loadCreds(room) || { member: res.member, token: res.token, name: name.value.trim() });
      }, function (err) {
        if (err.code === "room_not_found" || err.status === 404) return gone(room, MESSAGES.room_not_found);
        if (err.code === "name_taken") invalid(name, true);
        showError(messageFor(err));
      })
      .then(function () { busy(btn, false); });
  });

  function gone(room, text) {
    disconnect();
    if (room) clearCreds(room);
    setConn("idle", "");
    $("gone-text").textContent = text;
    showView("gone");
    announce(text);
  }

  // ---------- room state ----------
  var S = null; // { room, creds, state, es, retryTimer }

  function enterRoom(room, creds) {
    S = { room: room, creds: creds, state: null, es: null, retryTimer: null, failures: 0, history: [], historyGen: 0,
      pending: null, focused: false, flipped: 0 };
    $("me-name").textContent = creds.name || "";
    $("me-role").textContent = "";
    $("room-title").textContent = "Loading…";
    $("share-link").value = inviteLink(room);
    $("member-list").textContent = "";
    $("results").hidden = true;
    $("vote-area").hidden = true;
    $("history-list").textContent = "";
    showView("room");
    connect();
  }

  function disconnect() {
    if (!S) return;
    if (S.es) S.es.close();
    clearTimeout(S.retryTimer);
    S = null;
  }

  function connect() {
    var s = S;
    if (!s) return;
    if (s.es) s.es.close();
    setConn(s.state ? "reconnecting" : "connecting", s.state ? "Reconnecting…" : "Connecting…");
    var url = "/api/rooms/" + encodeURIComponent(s.room) + "/events?token=" + encodeURIComponent(s.creds.token);
    var es = new EventSource(url);
    s.es = es;
    // A resumed stream (Last-Event-ID) gets no snapshot: a vote kept from
    // the outage is resent as soon as the stream is open again.
    es.onopen = function () { s.failures = 0; setConn("live", "Live"); resendPending(s); };
    // A vote made while offline is not sent (the cards are disabled); one
    // whose answer was lost is retried by api() with its Idempotency-Key.
    es.onerror = function () {
      if (S !== s) return;
      if (es.readyState === EventSource.CONNECTING) {
        setConn("reconnecting", "Reconnecting…");
        return;
      }
      // Closed for good (HTTP error on the stream): find out why.
      setConn("offline", "Offline");
      api("GET", "/api/rooms/" + encodeURIComponent(s.room), undefined, s.creds.token).then(function () {
        scheduleReconnect(s);
      }, function (err) {
        if (S !== s) return;
        if (err.status === 404 && (err.code === "room_not_found" || err.code === "not_found")) return gone(s.room, MESSAGES.room_not_found);
        if (err.status === 401 || err.status === 403 || err.code === "member_not_found" || err.status === 404) {
          clearCreds(s.room);
          disconnect();
          showJoin(s.room);
          showError(MESSAGES.unauthorized, "info");
          return;
        }
        scheduleReconnect(s);
      });
    };
    function on(type, fn) {
      es.addEventListener(type, function (ev) {
        if (S !== s) return;
        var data = null;
        try { data = ev.data ? JSON.parse(ev.data) : null; } catch (e) { return; }
        fn(data || {});
      });
    }
    on("snapshot", function (d) {
      s.state = normalize(d);
      render();
      loadHistory(s);
      resendPending(s);
      if (!s.focused) { // entering the room: focus where the next action is
        s.focused = true;
        var lead = s.state.leader === s.creds.member;
        focusLater(lead && !s.state.session ? "story-input" : "room-title");
      }
    });
    on("member_joined", function (d) {
      if (!s.state) return;
      if (!findMember(d.member)) s.state.members.push({ member: d.member, name: d.name, role: d.role || "voter", voted: false });
      render();
      if (d.member !== s.creds.member) announce(d.name + " joined");
    });
    on("member_left", function (d) {
      if (!s.state) return;
      var m = findMember(d.member);
      s.state.members = s.state.members.filter(function (x) { return x.member !== d.member; });
      if (d.member === s.creds.member) {
        return gone(s.room, "You are no longer a member of this room.");
      }
      render();
      if (m) announce(m.name + " left");
    });
    on("session_started", function (d) {
      if (!s.state) return;
      s.state.session = { story: d.story, status: "voting", votes: null, myVote: null, stats: null, round: 0, estimate: null, endsAt: null, reason: "" };
      s.state.members.forEach(function (m) { m.voted = false; });
      render();
      announce("Voting started: " + d.story);
    });
    on("round_started", function (d) {
      if (!s.state || !s.state.session) return;
      s.state.session.round = d.round;
      if (d.revote) announce("Re-vote: " + d.story);
    });
    on("settings_changed", function (d) {
      if (!s.state) return;
      s.state.autoReveal = !!d.autoReveal;
      render();
      announce(d.autoReveal ? "Votes are revealed when everyone has voted" : "The leader reveals the votes");
    });
    on("timer_set", function (d) {
      if (!s.state || !s.state.session || (s.state.session.round && d.round !== s.state.session.round)) return;
      // Count down from the length, not from endsAt: the clocks may differ.
      s.state.session.endsAt = d.endsAt ? Date.now() + d.seconds * 1000 : null;
      render();
      announce(d.endsAt ? "Countdown started: " + spoken(d.seconds) : "Countdown stopped");
    });
    on("queue_changed", function (d) {
      if (!s.state) return;
      s.state.queue = d.queue || [];
      render();
    });
    on("estimate_recorded", function (d) {
      if (!s.state) return;
      var sess = s.state.session;
      if (sess && sess.status === "finished" && sess.round === d.round) sess.estimate = d.estimate;
      render();
      loadHistory(s);
      announce("Agreed estimate for " + d.story + ": " + d.estimate);
    });
    on("role_changed", function (d) {
      if (!s.state) return;
      var m = findMember(d.member);
      if (!m) return;
      m.role = d.role;
      var sess = s.state.session;
      if (d.role === "observer") {
        if (sess && sess.status === "voting") m.voted = false;
        if (d.member === s.creds.member && sess && sess.status === "voting") sess.myVote = null;
      }
      render();
      announce((d.member === s.creds.member ? "You are" : m.name + " is") + " now " + (d.role === "observer" ? "an observer" : "a voter"));
    });
    on("vote_cast", function (d) {
      if (!s.state) return;
      var m = findMember(d.member);
      if (m) m.voted = true;
      render();
    });
    on("session_finished", function (d) {
      if (!s.state) return;
      var sess = s.state.session || { story: d.story, myVote: null };
      sess.story = d.story != null ? d.story : sess.story;
      sess.status = "finished";
      sess.votes = d.votes || {};
      sess.stats = d.stats || null;
      sess.round = d.round || sess.round;
      sess.estimate = null;
      sess.endsAt = null;
      sess.reason = d.reason || "leader";
      s.state.session = sess;
      s.state.rounds = (s.state.rounds || 0) + 1;
      render();
      loadHistory(s);
      announce("Votes revealed" + (d.reason === "auto" ? ": everyone had voted" : d.reason === "timer" ? ": time is up" : ""));
      if (document.hidden) document.title = "● Votes revealed · " + s.state.title;
    });
    on("leader_changed", function (d) {
      if (!s.state) return;
      s.state.leader = d.leader;
      render();
      var m = findMember(d.leader);
      if (d.leader === s.creds.member) announce("You now lead the room");
      else if (m) announce(m.name + " now leads the room");
    });
    on("rejected", function (d) { showError(messageFor({ code: d.error, message: d.message })); });
    on("room_closed", function (d) {
      gone(s.room, MESSAGES.room_closed + (d.reason ? " (" + d.reason + ")" : ""));
    });
  }

  function scheduleReconnect(s) {
    if (S !== s) return;
    s.failures++;
    var delay = Math.min(1000 * Math.pow(2, s.failures), 15000) * (0.5 + Math.random() * 0.5);
    clearTimeout(s.retryTimer);
    s.retryTimer = setTimeout(function () { if (S === s) connect(); }, delay);
  }

  function normalize(d) {
    var deck = d.deck;
    if (typeof deck === "string") deck = deck.split(/[\s,]+/).filter(Boolean);
    if (!Array.isArray(deck) || !deck.length) deck = DECKS.fibonacci;
    return {
      room: d.room, title: d.title || "", capacity: d.capacity, leader: d.leader,
      deck: deck.map(String),
      members: (d.members || []).map(function (m) {
        return { member: m.member, name: m.name, role: m.role || "voter", voted: !!m.voted };
      }),
      queue: (d.queue || []).slice(), rounds: d.rounds || 0, autoReveal: !!d.autoReveal,
      session: d.session ? {
        story: d.session.story, status: d.session.status, votes: d.session.votes || null,
        myVote: d.session.myVote == null ? null : String(d.session.myVote), stats: d.session.stats || null,
        round: d.session.round || 0, estimate: d.session.estimate == null ? null : String(d.session.estimate),
        endsAt: d.session.remainingMs == null ? null : Date.now() + d.session.remainingMs, reason: ""
      } : null
    };
  }
  function findMember(id) {
    var ms = S && S.state ? S.state.members : [];
    for (var i = 0; i < ms.length; i++) if (ms[i].member === id) return ms[i];
    return null;
  }

  // ---------- stats ----------
  function computeStats(votes) {
    var vals = Object.keys(votes || {}).map(function (k) { return String(votes[k]); });
    var nums = vals.map(Number).filter(function (v, i) { return vals[i] !== "" && isFinite(v); }).sort(function (a, b) { return a - b; });
    var avg = null, med = null;
    if (nums.length) {
      avg = nums.reduce(function (a, b) { return a + b; }, 0) / nums.length;
      var mid = Math.floor(nums.length / 2);
      med = nums.length % 2 ? nums[mid] : (nums[mid - 1] + nums[mid]) / 2;
    }
    var consensus = vals.length > 0 && vals.every(function (v) { return v === vals[0]; });
    return { average: avg, median: med, consensus: consensus };
  }
  function fmt(n) {
    if (n === null || n === undefined || n === "" || (typeof n === "number" && !isFinite(n))) return "–";
    if (typeof n !== "number") return String(n);
    return String(Math.round(n * 10) / 10);
  }

  // ---------- rendering ----------

  function render() {
    if (!S || !S.state) return;
    var st = S.state, me = S.creds.member, isLeader = st.leader === me;
    var sess = st.session;
    if (!(document.hidden && document.title.indexOf("● ") === 0)) document.title = st.title + " · Planning poker";
    $("room-title").textContent = st.title;
    var meM = findMember(me);
    var isObserver = !!meM && meM.role === "observer";
    if (meM) $("me-name").textContent = meM.name;
    $("me-role").textContent = (isLeader ? " · leader" : "") + (isObserver ? " · observer" : "");
    var banner = $("offline-banner");
    banner.hidden = connState !== "reconnecting" && connState !== "offline";
    if (S.pending) banner.setAttribute("data-pending-vote", S.pending.value); else banner.removeAttribute("data-pending-vote");
    $("pending-note").textContent = S.pending ? " Your vote " + S.pending.value + " is sent as soon as the connection is back." : "";

    // Members.
    var list = $("member-list");
    list.textContent = "";
    st.members.forEach(function (m) {
      var voted = !!m.voted && !!sess && sess.status === "voting";
      if (sess && sess.status === "finished") voted = !!(sess.votes && Object.prototype.hasOwnProperty.call(sess.votes, m.member));
      var li = el("li", {
        "data-testid": "member", "data-member-id": m.member, "data-voted": String(voted),
        "data-leader": String(m.member === st.leader), "data-me": String(m.member === me),
        "data-role": m.role || "voter"
      }, [
        el("span", { className: "avatar", "aria-hidden": "true", text: initials(m.name) }),
        el("span", { className: "member-name" }, [
          el("span", { className: "name", text: m.name, title: m.name }),
          m.member === st.leader ? el("span", { className: "tag", text: "leader" }) : null,
          m.role === "observer" ? el("span", { className: "tag", text: "observer" }) : null,
          m.member === me ? el("span", { className: "tag", text: "you" }) : null
        ]),
        m.role === "observer" ? null :
          el("span", { className: "vote-state", "aria-label": voted ? "has voted" : "has not voted", role: "img", text: voted ? "✓" : "" })
      ]);
      if (isLeader && m.member !== me) {
        var actions = el("span", { className: "member-actions" });
        li.appendChild(actions);
        actions.appendChild(el("button", {
          type: "button", className: "btn btn-small", "data-testid": "member-make-leader",
          "data-member-id": m.member, "aria-label": "Make leader: " + m.name, text: "Make leader"
        }));
        var rm = el("button", {
          type: "button", className: "btn btn-ghost btn-small", "data-testid": "member-remove",
          "data-member-id": m.member, "aria-label": "Remove " + m.name, text: "Remove"
        });
        actions.appendChild(rm);
      }
      list.appendChild(li);
    });
    $("member-count").textContent = "(" + st.members.length + (st.capacity ? "/" + st.capacity : "") + ")";

    // Leader panel.
    $("leader-panel").hidden = !isLeader;
    $("reveal").disabled = !(sess && sess.status === "voting");
    $("revote").disabled = !sess;
    var queue = st.queue || [];
    $("next-story").disabled = !queue.length;
    $("next-story").textContent = queue.length ? "Next story: " + clip(queue[0], 40) : "Next story";
    $("queue-clear").hidden = !queue.length;
    $("start-voting").textContent = sess && sess.status === "voting" ? "Restart with this story" : "Start voting";
    $("autoreveal").checked = !!st.autoReveal;
    var timing = !!(sess && sess.status === "voting" && sess.endsAt);
    $("timer-start").disabled = !(sess && sess.status === "voting");
    $("timer-start").textContent = timing ? "Restart countdown" : "Start countdown";
    $("timer-stop").hidden = !timing;
    renderCountdown();

    // Session.
    var status = sess ? sess.status : "none";
    var ss = $("session-status");
    ss.setAttribute("data-status", status);
    ss.textContent = status === "voting" ? "Voting" : status === "finished" ? "Revealed" : "Waiting";
    $("current-story").textContent = sess ? sess.story : "No story yet";
    // Observers do not count in "X of N voted".
    var voters = st.members.filter(function (m) { return m.role !== "observer"; });
    var votedCount = voters.filter(function (m) { return m.voted; }).length;
    $("session-hint").textContent = !sess
      ? (isLeader ? "Type a story above and start a voting round." : "The leader will start a voting round soon.")
      : status === "voting"
        ? votedCount + " of " + voters.length + " voted." + (st.autoReveal ? " The votes are revealed when everyone has voted." : isLeader ? " Reveal when everyone is ready." : "")
        : "Votes are revealed." + (isLeader ? " Record the agreed estimate, re-vote, or start the next story." : "");

    // Cards: not for observers; disabled while offline (a vote could not
    // be sent).
    var voteArea = $("vote-area");
    voteArea.hidden = status !== "voting" || isObserver;
    $("observer-note").hidden = status !== "voting" || !isObserver;
    if (status === "voting" && !isObserver) renderCards(st.deck, sess.myVote, !online());
    $("my-vote-text").textContent = status === "voting" && sess.myVote != null ? " — you picked " + sess.myVote + " (you can change it)" : "";

    // Results.
    var results = $("results");
    results.hidden = status !== "finished";
    if (status === "finished") renderResults(st, sess, isLeader);

    // Queue.
    $("queue-view").hidden = !queue.length;
    var ql = $("queue-list");
    ql.textContent = "";
    queue.forEach(function (q) { ql.appendChild(el("li", { "data-testid": "queue-item", text: q })); });

    $("toggle-role").textContent = isObserver ? "Vote again" : "Watch only";
    $("toggle-role").setAttribute("aria-label", isObserver ? "Vote again (become a voter)" : "Watch only (become an observer, without voting)");
    renderHistory();
  }

  function clip(text, n) { return text.length > n ? text.slice(0, n - 1) + "…" : text; }

  function renderCards(deck, myVote, disabled) {
    var box = $("cards");
    var existing = box.querySelectorAll("button");
    var same = existing.length === deck.length;
    for (var i = 0; same && i < deck.length; i++) same = existing[i].getAttribute("data-value") === deck[i];
    if (!same) {
      box.textContent = "";
      deck.forEach(function (v) {
        box.appendChild(el("button", {
          type: "button", className: "vote-card", "data-testid": "card", "data-value": v,
          "aria-pressed": "false", "aria-label": "Vote " + v, text: v
        }));
      });
    }
    Array.prototype.forEach.call(box.querySelectorAll("button"), function (b) {
      b.setAttribute("aria-pressed", String(myVote != null && b.getAttribute("data-value") === String(myVote)));
      b.disabled = !!disabled;
    });
  }

  // mostCommon returns the most frequent vote ("" when none; ties: the
  // first in deck order).
  function mostCommon(votes, deck) {
    var count = {}, best = "", n = 0;
    Object.keys(votes || {}).forEach(function (k) { count[votes[k]] = (count[votes[k]] || 0) + 1; });
    deck.concat(Object.keys(count)).forEach(function (v) { if ((count[v] || 0) > n) { n = count[v]; best = v; } });
    return best;
  }

  function renderResults(st, sess, isLeader) {
    var agreed = $("agreed-estimate");
    agreed.textContent = sess.estimate != null ? sess.estimate : "not recorded yet";
    agreed.setAttribute("data-estimate", sess.estimate != null ? sess.estimate : "");
    $("estimate-form").hidden = !isLeader;
    var input = $("estimate-input");
    if (isLeader && input.getAttribute("data-round") !== String(sess.round)) {
      input.setAttribute("data-round", String(sess.round));
      input.value = sess.estimate != null ? sess.estimate : mostCommon(sess.votes, st.deck);
      var dl = $("estimate-values");
      dl.textContent = "";
      st.deck.forEach(function (v) { dl.appendChild(el("option", { value: v })); });
    }
    var votes = sess.votes || {};
    var stats = sess.stats || computeStats(votes);
    $("reveal-reason").textContent = sess.reason === "auto" ? "Revealed by itself: everyone had voted."
      : sess.reason === "timer" ? "Revealed when the countdown ended." : "";
    // Average and median only mean something for numeric cards; the most
    // common value and the agreement do for every deck.
    $("stat-average").textContent = fmt(stats.average);
    $("stat-median").textContent = fmt(stats.median);
    $("stat-average-box").hidden = stats.average == null;
    $("stat-median-box").hidden = stats.median == null;
    var common = stats.mostCommon || [];
    $("stat-common").textContent = common.length ? common.join(" / ") : "–";
    $("stat-agreement").textContent = stats.agreement == null ? "–" : Math.round(stats.agreement * 100) + " %";
    var c = $("stat-consensus");
    c.setAttribute("data-consensus", String(!!stats.consensus));
    c.textContent = stats.consensus ? "Yes" : "No";
    renderDistribution(stats, common);
    var low = stats.lowest || [], high = stats.highest || [];
    // The cards turn over once per round (not again on every re-render).
    var flip = S.flipped !== sess.round;
    S.flipped = sess.round;
    var list = $("result-list");
    list.textContent = "";
    var seen = {};
    function row(id, name) {
      seen[id] = true;
      var has = Object.prototype.hasOwnProperty.call(votes, id);
      var v = has ? String(votes[id]) : "";
      var extreme = low.indexOf(id) >= 0 ? "low" : high.indexOf(id) >= 0 ? "high" : "";
      list.appendChild(el("li", {
        "data-testid": "result-vote", "data-member-id": id, "data-value": v, "data-extreme": extreme,
        className: flip ? "flip" : "", title: name
      }, [
        el("span", { className: "result-name", text: name }),
        extreme ? el("span", { className: "extreme-tag", text: extreme === "low" ? "lowest" : "highest" }) : null,
        el("span", { className: "result-value", text: has ? v : "no vote" })
      ]));
    }
    st.members.forEach(function (m) {
      if (m.role !== "observer" || Object.prototype.hasOwnProperty.call(votes, m.member)) row(m.member, m.name);
    });
    Object.keys(votes).forEach(function (id) { if (!seen[id]) row(id, "(left)"); });
  }

  // renderDistribution draws one bar per value cast (deck order), the most
  // common highlighted; widths are set through the CSSOM (the CSP allows
  // no inline style attributes).
  function renderDistribution(stats, common) {
    var dist = stats.distribution || [];
    var list = $("dist-list"), top = 0;
    dist.forEach(function (d) { top = Math.max(top, d.count); });
    list.textContent = "";
    $("distribution").hidden = !dist.length;
    dist.forEach(function (d) {
      var bar = el("span", { className: "dist-bar" });
      bar.style.width = Math.max(4, Math.round(d.count / top * 100)) + "%";
      list.appendChild(el("li", {
        "data-testid": "dist-bar", "data-value": d.value, "data-count": String(d.count),
        "data-top": String(common.indexOf(d.value) >= 0)
      }, [
        el("span", { className: "dist-value", text: d.value }),
        el("span", { className: "dist-track", "aria-hidden": "true" }, [bar]),
        el("span", { className: "dist-count", text: d.count + (d.count === 1 ? " vote" : " votes") })
      ]));
    });
  }

  // ---------- countdown ----------
  var ticker = null, lastSpoken = null;
  function spoken(sec) {
    return sec >= 60 && sec % 60 === 0 ? (sec / 60) + (sec === 60 ? " minute" : " minutes") : sec + " seconds";
  }
  function renderCountdown() {
    var sess = S && S.state && S.state.session;
    var end = sess && sess.status === "voting" ? sess.endsAt : null;
    $("countdown").hidden = !end;
    if (!end) { clearInterval(ticker); ticker = null; lastSpoken = null; return; }
    var left = Math.max(0, Math.ceil((end - Date.now()) / 1000));
    $("countdown-value").textContent = Math.floor(left / 60) + ":" + ("0" + (left % 60)).slice(-2);
    $("countdown").setAttribute("data-urgent", String(left <= 10));
    $("countdown-sr").textContent = spoken(left) + " left";
    if (left === 10 && lastSpoken !== 10) { lastSpoken = 10; announce("10 seconds left"); }
    if (!ticker) ticker = setInterval(renderCountdown, 250);
  }

  // ---------- a vote the connection lost ----------
  // resendPending sends a vote again that failed for want of a connection,
  // with its first Idempotency-Key (the server applies it once even if the
  // first attempt did arrive), once the stream is live and its snapshot
  // shows the round still open; otherwise it says the vote did not count.
  function resendPending(s) {
    var p = s.pending;
    if (!p || S !== s || !s.state) return;
    var sess = s.state.session;
    s.pending = null;
    if (!sess || sess.status !== "voting" || (p.round && sess.round !== p.round)) {
      showError("Your vote " + p.value + " was not counted: the round ended while you were offline.");
      render();
      return;
    }
    sess.myVote = p.value;
    render();
    api("POST", roomPath("/votes"), { value: p.value }, s.creds.token, p.key).then(function () {
      showError("Your vote " + p.value + " was sent after the connection came back.", "info");
      announce("You voted " + p.value);
    }, function (err) {
      if (S !== s) return;
      if (s.state && s.state.session === sess) { sess.myVote = null; render(); }
      showError("Your vote was not counted: " + messageFor(err), errorKind(err));
    });
  }

  // ---------- history ----------
  function loadHistory(s) {
    var gen = ++s.historyGen;
    api("GET", "/api/rooms/" + encodeURIComponent(s.room) + "/history", undefined, s.creds.token).then(function (h) {
      if (S !== s || gen !== s.historyGen) return;
      s.history = (h && h.rounds) || [];
      renderHistory();
    }, function () { /* shown again with the next event */ });
  }

  function renderHistory() {
    if (!S) return;
    var rounds = S.history || [];
    $("history-count").textContent = rounds.length ? "(" + rounds.length + ")" : "";
    $("history-empty").hidden = rounds.length > 0;
    var list = $("history-list");
    list.textContent = "";
    rounds.slice().reverse().forEach(function (r) {
      var ids = Object.keys(r.names || {});
      Object.keys(r.votes || {}).forEach(function (id) { if (ids.indexOf(id) < 0) ids.push(id); });
      var votes = ids.map(function (id) {
        var name = (r.names && r.names[id]) || "(left)";
        var has = r.votes && Object.prototype.hasOwnProperty.call(r.votes, id);
        return name + " " + (has ? r.votes[id] : "–");
      }).join(", ");
      list.appendChild(el("li", { "data-testid": "history-round", "data-round": String(r.round), "data-estimate": r.estimate == null ? "" : r.estimate }, [
        el("span", { className: "history-story", text: r.story }),
        el("span", { className: "history-estimate", text: r.estimate == null ? "no estimate" : r.estimate }),
        el("span", { className: "history-votes muted small", text: votes || "no votes" })
      ]));
    });
  }

  // exportHistory downloads the history: fetched with the member's token
  // (never put in a URL), saved through a temporary object URL.
  function exportHistory(format) {
    if (!S) return;
    var s = S;
    fetch(roomPath("/history?format=" + format), { headers: { "Authorization": "Bearer " + s.creds.token }, cache: "no-store" })
      .then(function (res) {
        if (!res.ok) throw new ApiError(res.status, "http_" + res.status, "Could not download the history.");
        return res.blob();
      }).then(function (blob) {
        var url = URL.createObjectURL(blob);
        var a = el("a", { href: url, download: "planning-poker-" + slug(s.state ? s.state.title : "room") + "." + format });
        document.body.appendChild(a);
        a.click();
        a.remove();
        setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
      }).then(null, function (err) { showError(err.code === "http_0" ? MESSAGES.network : messageFor(err), "conn"); });
  }
  function slug(t) { return String(t).toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 40) || "room"; }

  function initials(name) {
    var parts = String(name || "?").trim().split(/\s+/);
    var s = parts[0].charAt(0) + (parts.length > 1 ? parts[parts.length - 1].charAt(0) : "");
    return s.toUpperCase() || "?";
  }

  // ---------- room actions ----------
  function roomPath(suffix) { return "/api/rooms/" + encodeURIComponent(S.room) + suffix; }
  function act(btn, method, suffix, body) {
    if (!S) return Promise.resolve();
    var s = S;
    showError("");
    if (btn) busy(btn, true);
    return api(method, roomPath(suffix), body, s.creds.token).then(null, function (err) {
      if (S !== s) return;
      if (err.status === 401) {
        clearCreds(s.room); disconnect(); showJoin(s.room); showError(MESSAGES.unauthorized, "info");
      } else if (err.code === "room_not_found") {
        gone(s.room, MESSAGES.room_not_found);
      } else if (err.status === 403) {
        showError(err.message || MESSAGES.not_leader); // e.g. the lead moved meanwhile
      } else {
        showError(messageFor(err), errorKind(err));
      }
      throw err;
    }).then(function () { if (btn) busy(btn, false); render(); }, function () { if (btn) busy(btn, false); render(); });
  }

  $("start-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var story = $("story-input");
    invalid(story, false);
    if (!story.value.trim()) { invalid(story, true); showError("Type the story to estimate first."); return; }
    act($("start-voting"), "POST", "/session", { story: story.value.trim() }).then(function () {
      story.value = "";
      focusLater("reveal");
    }, function () {});
  });
  $("reveal").addEventListener("click", function () {
    act($("reveal"), "POST", "/session/finish").then(function () { focusLater("estimate-input"); }, function () {});
  });
  $("revote").addEventListener("click", function () {
    act($("revote"), "POST", "/session/revote").then(function () { focusLater("reveal"); }, function () {});
  });
  $("next-story").addEventListener("click", function () {
    act($("next-story"), "POST", "/session/next").then(function () { focusLater("reveal"); }, function () {});
  });
  $("queue-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var input = $("queue-input");
    var stories = input.value.split("\n").map(function (x) { return x.trim(); }).filter(Boolean);
    invalid(input, false);
    if (!stories.length) { invalid(input, true); showError("Type one story per line first."); return; }
    act($("queue-add"), "POST", "/queue", { stories: stories }).then(function () { input.value = ""; input.focus(); }, function () {});
  });
  $("queue-clear").addEventListener("click", function () {
    if (!window.confirm("Remove every queued story?")) return;
    act($("queue-clear"), "PUT", "/queue", { stories: [] });
  });
  $("estimate-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var input = $("estimate-input");
    invalid(input, false);
    if (!input.value.trim()) { invalid(input, true); showError("Type the agreed estimate first."); return; }
    act($("record-estimate"), "POST", "/estimate", { value: input.value.trim() }).then(function () {
      announce("Estimate recorded");
      focusLater(S && S.state && (S.state.queue || []).length ? "next-story" : "story-input");
    }, function () {});
  });
  $("autoreveal").addEventListener("change", function () {
    var box = $("autoreveal");
    act(null, "POST", "/settings", { autoReveal: box.checked }).then(function () { box.focus(); }, function () { render(); });
  });
  $("timer-start").addEventListener("click", function () {
    act($("timer-start"), "POST", "/session/timer", { seconds: parseInt($("timer-seconds").value, 10) })
      .then(function () { focusLater("timer-stop"); }, function () {});
  });
  $("timer-stop").addEventListener("click", function () {
    act($("timer-stop"), "POST", "/session/timer", { seconds: 0 }).then(function () { focusLater("timer-start"); }, function () {});
  });
  $("export-csv").addEventListener("click", function () { exportHistory("csv"); });
  $("export-json").addEventListener("click", function () { exportHistory("json"); });
  $("toggle-role").addEventListener("click", function () {
    var m = S && findMember(S.creds.member);
    if (!m) return;
    act($("toggle-role"), "POST", "/members/" + encodeURIComponent(m.member) + "/role", { role: m.role === "observer" ? "voter" : "observer" })
      .then(function () { $("toggle-role").focus(); }, function () {});
  });
  function focusLater(id) { setTimeout(function () { var n = $(id); if (n && !n.disabled && n.offsetParent) n.focus(); }, 0); }
  $("cards").addEventListener("click", function (ev) {
    var b = ev.target.closest("button[data-value]");
    if (!b || b.disabled || !S || !S.state || !S.state.session) return;
    if (!online()) { showError("You are offline: the vote was not sent. Vote again once the connection is back.", "conn"); return; }
    var sess = S.state.session, prev = sess.myVote, v = b.getAttribute("data-value");
    sess.myVote = v; // optimistic; rolled back on error
    render();
    var s = S, key = newKey();
    api("POST", roomPath("/votes"), { value: v }, S.creds.token, key).then(function () {
      announce("You voted " + v);
    }, function (err) {
      if (S !== s) return;
      if (err.code === "network") {
        // Kept, with its key, and sent again once the connection is back
        // (resendPending); the banner says so meanwhile.
        s.pending = { value: v, key: key, round: sess.round };
        showError("Your vote " + v + " is not sent yet: no connection. It is sent again as soon as the connection is back.", "conn");
        render();
        return;
      }
      if (s.state && s.state.session === sess) { sess.myVote = prev; render(); }
      showError(messageFor(err), errorKind(err));
    });
  });
  $("member-list").addEventListener("click", function (ev) {
    var h = ev.target.closest("button[data-testid='member-make-leader']");
    if (h && S) {
      var to = findMember(h.getAttribute("data-member-id"));
      if (!to || !window.confirm("Make " + to.name + " the leader? You will no longer run the rounds.")) return;
      act(h, "POST", "/leader", { member: to.member });
      return;
    }
    var b = ev.target.closest("button[data-testid='member-remove']");
    if (!b || !S) return;
    var m = findMember(b.getAttribute("data-member-id"));
    if (!m || !window.confirm("Remove " + m.name + " from the room?")) return;
    act(b, "DELETE", "/members/" + encodeURIComponent(m.member));
  });
  $("leave-room").addEventListener("click", function () {
    if (!S) return;
    var s = S;
    if (s.state && s.state.leader === s.creds.member) {
      var others = s.state.members.filter(function (m) { return m.member !== s.creds.member; });
      var msg = others.length
        ? "You lead this room. If you leave, " + others[0].name + " will lead it. (To choose someone else, use “Make leader” first.) Leave?"
        : "You are the last member. Leave the room?";
      if (!window.confirm(msg)) return;
    }
    act($("leave-room"), "DELETE", "/members/" + encodeURIComponent(s.creds.member)).then(function () {
      clearCreds(s.room);
      disconnect();
      navigate("/");
      showError("You left the room.", "info");
    }, function () { /* message already shown */ });
  });
  $("copy-link").addEventListener("click", function () {
    var input = $("share-link"), btn = $("copy-link");
    function done(ok) {
      btn.textContent = ok ? "Copied!" : "Copy";
      announce(ok ? "Invite link copied" : "Select the link and copy it");
      setTimeout(function () { btn.textContent = "Copy"; }, 2000);
    }
    input.select();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(function () { done(true); }, function () { done(legacyCopy()); });
    } else {
      done(legacyCopy());
    }
    function legacyCopy() { try { return document.execCommand("copy"); } catch (e) { return false; } }
  });
  $("share-link").addEventListener("focus", function (ev) { ev.target.select(); });
  $("home-link").addEventListener("click", function (ev) {
    if (ev.metaKey || ev.ctrlKey || ev.shiftKey) return;
    ev.preventDefault();
    navigate("/");
  });

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && S && S.state) { document.title = S.state.title + " · Planning poker"; }
  });

  api("GET", "/api/config").then(function (c) {
    if (c) CONFIG = c;
    if (S) $("share-link").value = inviteLink(S.room);
  }, function () { /* the browser's address is the default */ });
  customDeckShown();
  route();
})();
