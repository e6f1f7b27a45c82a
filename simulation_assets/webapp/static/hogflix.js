// HogFlix page script: starts posthog-js from the page's configuration, applies the synthetic
// marker (the persona cookie set by the browser bot), and captures the product events the
// user's clicks cause. Pageviews, page leaves and autocapture come from posthog-js itself.
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("hogflix-config").textContent);
  var ph = window.posthog;

  function cookie(name) {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === name) return decodeURIComponent(parts[i].slice(eq + 1));
    }
    return "";
  }

  // Synthetic marker: {distinct_id, session, plan, state, activity_pattern, entry_point, anonymous}.
  var persona = null;
  try {
    persona = cookie("hogflix_persona") ? JSON.parse(cookie("hogflix_persona")) : null;
  } catch (e) {
    persona = null;
  }

  var options = {
    api_host: cfg.api_host,
    autocapture: true,
    capture_pageview: true,
    capture_pageleave: true,
    persistence: "localStorage+cookie",
    person_profiles: "identified_only",
    disable_session_recording: !cfg.session_recording,
    disable_surveys: true,
    advanced_disable_toolbar_metrics: true,
  };
  ph.init(cfg.key, options);

  if (persona && persona.distinct_id) {
    // Registered before the initial $pageview (posthog-js captures it on the next tick).
    ph.register({
      is_synthetic: true,
      synthetic_persona: persona.distinct_id,
      synthetic_session: persona.session || null,
      plan: persona.plan || null,
      state: persona.state || null,
      activity_pattern: persona.activity_pattern || null,
      entry_point: persona.entry_point || null,
    });
    // A signed-in persona: identify on load (posthog-js captures the first $pageview on the next
    // tick, so it already carries the persona's id). On a browser that knows the persona this is a
    // no-op; on a new one it links the device's anonymous id once ($identify).
    if (!persona.anonymous && ph.get_distinct_id() !== persona.distinct_id) {
      ph.identify(persona.distinct_id, { is_synthetic: true, plan: persona.plan || null });
    }
  }

  function videoProps(el) {
    return {
      video_id: el.getAttribute("data-video-id"),
      video_title: el.getAttribute("data-video-title"),
      genre: el.getAttribute("data-genre"),
      video_duration_seconds: Number(el.getAttribute("data-minutes")) * 60,
    };
  }

  // Opening a title from a listing page.
  document.querySelectorAll("a.card").forEach(function (a) {
    a.addEventListener("click", function () {
      ph.capture("video_opened", videoProps(a));
    });
  });

  // Watchlist: kept in localStorage so My List shows it on the next visit.
  var LIST_KEY = "hogflix_watchlist";
  function readList() {
    try {
      return JSON.parse(localStorage.getItem(LIST_KEY) || "[]");
    } catch (e) {
      return [];
    }
  }
  var addButton = document.getElementById("watchlist-button");
  if (addButton) {
    addButton.addEventListener("click", function () {
      var props = videoProps(addButton);
      var list = readList().filter(function (v) { return v.video_id !== props.video_id; });
      list.unshift(Object.assign({ slug: addButton.getAttribute("data-slug") }, props));
      localStorage.setItem(LIST_KEY, JSON.stringify(list.slice(0, 50)));
      ph.capture("watchlist_added", props);
      addButton.textContent = "✓ In My List";
    });
  }
  var listBox = document.getElementById("watchlist-items");
  if (listBox) {
    var items = readList();
    if (items.length) document.getElementById("watchlist-empty").hidden = true;
    items.forEach(function (v) {
      var a = document.createElement("a");
      a.className = "card";
      a.href = cfg.prefix + "/title/" + encodeURIComponent(v.slug || "");
      a.textContent = v.video_title;
      listBox.appendChild(a);
    });
  }

  // Player: position follows the clock while playing; milestones become video_progress events.
  var player = document.getElementById("player");
  if (player) {
    var props = videoProps(player);
    var duration = props.video_duration_seconds;
    var milestones = cfg.progress_milestones || [25, 50, 75];
    var completedAt = cfg.completed_at_percent || 95;
    var state = { playing: false, startedAt: 0, offset: 0, sent: {}, completed: false, started: false };
    var fill = document.getElementById("progress-fill");
    var label = document.getElementById("progress-label");
    function position() {
      return state.offset + (state.playing ? (Date.now() - state.startedAt) / 1000 : 0);
    }
    function tick() {
      var pct = Math.min(100, (100 * position()) / duration);
      fill.style.width = pct.toFixed(1) + "%";
      label.textContent = Math.floor(pct) + " %";
      milestones.forEach(function (m) {
        if (pct >= m && !state.sent[m]) {
          state.sent[m] = true;
          ph.capture("video_progress", Object.assign({ progress_percent: m }, props));
        }
      });
      if (pct >= completedAt && !state.completed) {
        state.completed = true;
        ph.capture("video_completed", Object.assign({ completion_percent: Math.round(pct * 10) / 10 }, props));
      }
      if (pct >= 100) stop();
    }
    function stop() {
      if (!state.playing) return;
      state.offset = position();
      state.playing = false;
    }
    document.getElementById("play-button").addEventListener("click", function () {
      if (state.playing) return;
      state.playing = true;
      state.startedAt = Date.now();
      if (!state.started) {
        state.started = true;
        ph.capture("video_started", props);
      }
    });
    document.getElementById("stop-button").addEventListener("click", function () {
      tick();
      stop();
    });
    setInterval(function () {
      if (state.playing) tick();
    }, 1000);
    window.hogflixPlayer = { position: position, state: state };
    document.querySelectorAll(".star").forEach(function (b) {
      b.addEventListener("click", function () {
        ph.capture("video_rated", Object.assign({ rating: Number(b.getAttribute("data-rating")) }, props));
        document.querySelectorAll(".star").forEach(function (s) {
          s.classList.toggle("on", Number(s.getAttribute("data-rating")) <= Number(b.getAttribute("data-rating")));
        });
      });
    });
  }

  // FlixBuddy chat.
  var chat = document.getElementById("chat-form");
  if (chat) {
    chat.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var input = document.getElementById("chat-input");
      var question = input.value || "What should I watch tonight?";
      var logBox = document.getElementById("chat-log");
      logBox.insertAdjacentHTML("beforeend", '<p class="me"></p>');
      logBox.lastChild.textContent = question;
      fetch(cfg.prefix + "/api/flixbuddy", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ question: question }),
      })
        .then(function (r) { return r.json(); })
        .then(function (answer) {
          logBox.insertAdjacentHTML("beforeend", '<p class="bot"></p>');
          logBox.lastChild.textContent = answer.reply;
          ph.capture("flixbuddy_interaction", {
            question: question,
            question_template: answer.question_template,
            conversation_id: answer.conversation_id,
          });
          document.body.setAttribute("data-chat-answered", "1");
        });
      input.value = "";
    });
  }

  // Support ticket.
  var ticket = document.getElementById("ticket-form");
  if (ticket) {
    ticket.addEventListener("submit", function (ev) {
      ev.preventDefault();
      ph.capture("support_ticket_created", {
        ticket_category: document.getElementById("ticket-category").value,
      });
      document.getElementById("ticket-done").hidden = false;
    });
  }

  // Sign-up: the anonymous visitor becomes the persona.
  var signup = document.getElementById("signup-form");
  if (signup) {
    signup.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var id = persona && persona.distinct_id ? persona.distinct_id : document.getElementById("signup-email").value;
      var plan = document.getElementById("signup-plan").value;
      ph.identify(id, { email: document.getElementById("signup-email").value, plan: plan, is_synthetic: !!persona });
      ph.capture("user_signed_up", { plan: plan, signup_source: (persona && persona.source) || "direct" });
      document.getElementById("signup-done").hidden = false;
    });
  }
})();
