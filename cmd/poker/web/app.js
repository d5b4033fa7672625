/*
 * Planning poker UI — vanilla JS, no build step, no inline code (strict CSP).
 *
 * Stable selectors for browser tests (each element has id = data-testid
 * unless noted as repeated):
 *
 *   views        view-create, view-join, view-room, view-gone (+ gone-text, gone-home)
 *   create form  create-form, create-title, create-name, create-deck
 *                (values: fibonacci | tshirt | pow2), create-submit
 *   join form    join-form, join-room-id, join-name, join-submit
 *   room header  room-title, me-name, me-role, share-link (input), copy-link (button)
 *   members      member-list, member-count;
 *                repeated li[data-testid="member"] with data-member-id,
 *                data-voted="true|false", data-leader, data-me;
 *                leader-only button[data-testid="member-remove"][data-member-id]
 *   leader       leader-panel, story-input, start-voting, reveal
 *   session      session-panel, session-status (data-status="none|voting|finished"),
 *                current-story, session-hint, vote-area, my-vote-text
 *   cards        cards; repeated button[data-testid="card"][data-value],
 *                aria-pressed="true" on the selected one
 *   results      results, stat-average, stat-median,
 *                stat-consensus (data-consensus="true|false"), result-list;
 *                repeated li[data-testid="result-vote"] with data-member-id,
 *                data-value (the member's vote, "" if none)
 *   misc         leave-room, connection-status (data-state="idle|connecting|
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
  function api(method, path, body, token) {
    var attempts = 4;
    var key = token && method !== "GET" ? newKey() : "";
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
            throw new ApiError(res.status, code, (data && data.message) || res.statusText || "Request failed");
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
  function setConn(state, text) {
    var c = $("connection-status");
    c.hidden = state === "idle";
    c.setAttribute("data-state", state);
    c.querySelector(".conn-text").textContent = text;
  }
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
    api("POST", "/api/rooms", { title: title.value.trim(), leader: name.value.trim(), deck: deck })
      .then(function (res) {
        saveCreds(res.room, { member: res.member, token: res.token, name: name.value.trim() });
        navigate("/r/" + encodeURIComponent(res.room));
      }, function (err) { showError(messageFor(err)); })
      .then(function () { busy(btn, false); });
  });

  // ---------- join ----------
  var joinRoom = null;
  function showJoin(room) {
    joinRoom = room;
    document.title = "Join room · Planning poker";
    setConn("idle", "");
    $("join-room-id").textContent = room;
    showView("join");
    $("join-name").focus();
  }
  $("join-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var name = $("join-name"), btn = $("join-submit"), room = joinRoom;
    invalid(name, false);
    if (!name.value.trim()) { invalid(name, true); showError("Please enter your name."); return; }
    showError("");
    busy(btn, true);
    api("POST", "/api/rooms/" + encodeURIComponent(room) + "/members", { name: name.value.trim() })
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
    S = { room: room, creds: creds, state: null, es: null, retryTimer: null, failures: 0 };
    $("me-name").textContent = creds.name || "";
    $("me-role").textContent = "";
    $("room-title").textContent = "Loading…";
    $("share-link").value = location.origin + "/r/" + encodeURIComponent(room);
    $("member-list").textContent = "";
    $("results").hidden = true;
    $("vote-area").hidden = true;
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
    es.onopen = function () { s.failures = 0; setConn("live", "Live"); };
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
    on("snapshot", function (d) { s.state = normalize(d); render(); });
    on("member_joined", function (d) {
      if (!s.state) return;
      if (!findMember(d.member)) s.state.members.push({ member: d.member, name: d.name, voted: false });
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
      s.state.session = { story: d.story, status: "voting", votes: null, myVote: null, stats: null };
      s.state.members.forEach(function (m) { m.voted = false; });
      render();
      announce("Voting started: " + d.story);
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
      s.state.session = sess;
      render();
      announce("Votes revealed");
    });
    on("leader_changed", function (d) {
      if (!s.state) return;
      s.state.leader = d.leader;
      render();
      var m = findMember(d.leader);
      if (m) announce(m.name + " now leads the room");
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
      deck: deck.map(String), members: (d.members || []).slice(),
      session: d.session ? {
        story: d.session.story, status: d.session.status, votes: d.session.votes || null,
        myVote: d.session.myVote == null ? null : String(d.session.myVote), stats: d.session.stats || null
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
    document.title = st.title + " · Planning poker";
    $("room-title").textContent = st.title;
    var meM = findMember(me);
    if (meM) $("me-name").textContent = meM.name;
    $("me-role").textContent = isLeader ? " · leader" : "";

    // Members.
    var list = $("member-list");
    list.textContent = "";
    st.members.forEach(function (m) {
      var voted = !!m.voted && !!sess && sess.status === "voting";
      if (sess && sess.status === "finished") voted = !!(sess.votes && Object.prototype.hasOwnProperty.call(sess.votes, m.member));
      var li = el("li", {
        "data-testid": "member", "data-member-id": m.member, "data-voted": String(voted),
        "data-leader": String(m.member === st.leader), "data-me": String(m.member === me)
      }, [
        el("span", { className: "avatar", "aria-hidden": "true", text: initials(m.name) }),
        el("span", { className: "member-name" }, [
          el("span", { className: "name", text: m.name }),
          m.member === st.leader ? el("span", { className: "tag", text: "leader" }) : null,
          m.member === me ? el("span", { className: "tag", text: "you" }) : null
        ]),
        el("span", { className: "vote-state", "aria-label": voted ? "has voted" : "has not voted", role: "img", text: voted ? "✓" : "" })
      ]);
      if (isLeader && m.member !== me) {
        var rm = el("button", {
          type: "button", className: "btn btn-ghost btn-small", "data-testid": "member-remove",
          "data-member-id": m.member, "aria-label": "Remove " + m.name, text: "Remove"
        });
        li.appendChild(rm);
      }
      list.appendChild(li);
    });
    $("member-count").textContent = "(" + st.members.length + (st.capacity ? "/" + st.capacity : "") + ")";

    // Leader panel.
    $("leader-panel").hidden = !isLeader;
    $("reveal").disabled = !(sess && sess.status === "voting");
    $("start-voting").textContent = sess && sess.status === "voting" ? "Restart with this story" : "Start voting";

    // Session.
    var status = sess ? sess.status : "none";
    var ss = $("session-status");
    ss.setAttribute("data-status", status);
    ss.textContent = status === "voting" ? "Voting" : status === "finished" ? "Revealed" : "Waiting";
    $("current-story").textContent = sess ? sess.story : "No story yet";
    var votedCount = st.members.filter(function (m) { return m.voted; }).length;
    $("session-hint").textContent = !sess
      ? (isLeader ? "Type a story above and start a voting round." : "The leader will start a voting round soon.")
      : status === "voting"
        ? votedCount + " of " + st.members.length + " voted." + (isLeader ? " Reveal when everyone is ready." : "")
        : "Votes are revealed." + (isLeader ? " Start the next story when ready." : "");

    // Cards.
    var voteArea = $("vote-area");
    voteArea.hidden = status !== "voting";
    if (status === "voting") renderCards(st.deck, sess.myVote);
    $("my-vote-text").textContent = status === "voting" && sess.myVote != null ? " — you picked " + sess.myVote + " (you can change it)" : "";

    // Results.
    var results = $("results");
    results.hidden = status !== "finished";
    if (status === "finished") renderResults(st, sess);
  }

  function renderCards(deck, myVote) {
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
    });
  }

  function renderResults(st, sess) {
    var votes = sess.votes || {};
    var stats = sess.stats || computeStats(votes);
    $("stat-average").textContent = fmt(stats.average);
    $("stat-median").textContent = fmt(stats.median);
    var c = $("stat-consensus");
    c.setAttribute("data-consensus", String(!!stats.consensus));
    c.textContent = stats.consensus ? "Yes" : "No";
    var list = $("result-list");
    list.textContent = "";
    var seen = {};
    function row(id, name) {
      seen[id] = true;
      var has = Object.prototype.hasOwnProperty.call(votes, id);
      var v = has ? String(votes[id]) : "";
      list.appendChild(el("li", { "data-testid": "result-vote", "data-member-id": id, "data-value": v }, [
        el("span", { className: "result-name", text: name }),
        el("span", { className: "result-value", text: has ? v : "no vote" })
      ]));
    }
    st.members.forEach(function (m) { row(m.member, m.name); });
    Object.keys(votes).forEach(function (id) { if (!seen[id]) row(id, "(left)"); });
  }

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
      if (err.status === 401 || err.status === 403) {
        clearCreds(s.room); disconnect(); showJoin(s.room); showError(MESSAGES.unauthorized, "info");
      } else if (err.code === "room_not_found") {
        gone(s.room, MESSAGES.room_not_found);
      } else {
        showError(messageFor(err));
      }
      throw err;
    }).then(function () { if (btn) busy(btn, false); render(); }, function () { if (btn) busy(btn, false); render(); });
  }

  $("start-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var story = $("story-input");
    invalid(story, false);
    if (!story.value.trim()) { invalid(story, true); showError("Type the story to estimate first."); return; }
    act($("start-voting"), "POST", "/session", { story: story.value.trim() });
  });
  $("reveal").addEventListener("click", function () {
    act($("reveal"), "POST", "/session/finish");
  });
  $("cards").addEventListener("click", function (ev) {
    var b = ev.target.closest("button[data-value]");
    if (!b || !S || !S.state || !S.state.session) return;
    var sess = S.state.session, prev = sess.myVote, v = b.getAttribute("data-value");
    sess.myVote = v; // optimistic; rolled back on error
    render();
    api("POST", roomPath("/votes"), { value: v }, S.creds.token).then(function () {
      announce("You voted " + v);
    }, function (err) {
      if (S && S.state && S.state.session === sess) { sess.myVote = prev; render(); }
      showError(messageFor(err));
    });
  });
  $("member-list").addEventListener("click", function (ev) {
    var b = ev.target.closest("button[data-testid='member-remove']");
    if (!b || !S) return;
    var m = findMember(b.getAttribute("data-member-id"));
    if (!m || !window.confirm("Remove " + m.name + " from the room?")) return;
    act(b, "DELETE", "/members/" + encodeURIComponent(m.member));
  });
  $("leave-room").addEventListener("click", function () {
    if (!S) return;
    var s = S;
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

  route();
})();
