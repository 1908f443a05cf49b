// stpt — live updates for the server-rendered pages. Hand-written, no dependencies.
//
// Everything that comes from runners (names, paths) is put in the page as text:
// elements are built with createElement and filled with textContent / append(string);
// nothing received is ever parsed as HTML.
(function () {
  'use strict';

  var body = document.body;
  var prefix = body.dataset.prefix || '';
  var pageKind = body.dataset.page || '';
  var STATUSES = ['waiting', 'running', 'passed', 'warning', 'failed', 'error', 'unknown', 'cancelled'];
  // Server time minus browser time, so elapsed times follow the server's clock.
  var offset = 0;
  setOffset(body.dataset.serverNow);

  function setOffset(serverNow) {
    var server = parseTime(serverNow);
    if (server !== null) offset = server - Date.now();
  }

  function parseTime(text) {
    if (!text) return null;
    // Keep milliseconds only: not every engine reads microseconds.
    var ms = Date.parse(String(text).replace(/(\.\d{3})\d+/, '$1'));
    return isNaN(ms) ? null : ms;
  }

  function pad(n) { return (n < 10 ? '0' : '') + n; }

  // The seed's format, in UTC: dd-mm-YYYY  HH:MM:SS.
  function displayTime(text) {
    var ms = parseTime(text);
    if (ms === null) return '—';
    var d = new Date(ms);
    return pad(d.getUTCDate()) + '-' + pad(d.getUTCMonth() + 1) + '-' + d.getUTCFullYear() +
      '  ' + pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' + pad(d.getUTCSeconds());
  }

  function clock(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    return Math.floor(s / 3600) + ':' + pad(Math.floor(s / 60) % 60) + ':' + pad(s % 60);
  }

  // el('a', {href: url}, 'text', child, ...): text arguments become text nodes.
  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (name) {
        if (attrs[name] !== null && attrs[name] !== undefined) node.setAttribute(name, String(attrs[name]));
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function badge(status, big) {
    return el('span', { 'class': big ? 'status status-big' : 'status', 'data-status': status }, status);
  }

  function setBadge(node, status) {
    if (!node) return;
    node.dataset.status = status;
    node.textContent = status;
  }

  function isOngoing(status) { return status === 'waiting' || status === 'running'; }

  function sum(counts) {
    return STATUSES.reduce(function (total, s) { return total + (Number(counts && counts[s]) || 0); }, 0);
  }

  function finished(counts) {
    return sum(counts) - (Number(counts.waiting) || 0) - (Number(counts.running) || 0);
  }

  // ---- the live connection: reconnects with backoff, shows its state ----

  // Whether the page hears the server now: while it does not, what is still going on is not
  // counted forward (a duration would tick on for a run that may have ended meanwhile).
  var liveNow = true;

  function connect(path, onMessage) {
    var indicator = document.getElementById('live-state');
    var url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + path;
    var delay = 500;
    var socket = null;
    var stopped = false;
    var opened = false;
    var timer = null;

    var countdown = null;

    function show(state, text) {
      if (indicator) {
        indicator.dataset.state = state;
        indicator.textContent = text;
      }
      liveNow = state !== 'reconnecting' && state !== 'connecting' && state !== 'behind';
      body.classList.toggle('offline', state === 'reconnecting');
    }

    // "reconnecting in 7 s…", counting down to the next try.
    function countDown(wait) {
      var until = Date.now() + wait;
      if (countdown) clearInterval(countdown);
      var update = function () {
        var left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
        show('reconnecting', left > 0 ? 'reconnecting in ' + left + ' s…' : 'reconnecting…');
        if (left === 0 && countdown) { clearInterval(countdown); countdown = null; }
      };
      update();
      countdown = setInterval(update, 250);
    }

    function open() {
      timer = null;
      show(opened ? 'reconnecting' : 'connecting', opened ? 'reconnecting…' : 'connecting…');
      socket = new WebSocket(url);
      socket.onopen = function () {
        if (countdown) { clearInterval(countdown); countdown = null; }
        opened = true;
        delay = 500;
        show('live', 'live');
      };
      socket.onmessage = function (event) {
        var message;
        try { message = JSON.parse(event.data); } catch (e) { return; }
        // The server's live feed is interrupted (its Redis is away): what is shown may be
        // out of date until it says it caught up.
        if (message.behind === true) { show('behind', 'behind: catching up…'); return; }
        if (message.behind === false) { show('live', 'live'); return; }
        onMessage(message);
      };
      socket.onclose = function () {
        if (stopped) return;
        var wait = Math.round(delay * (0.8 + Math.random() * 0.4));
        delay = Math.min(delay * 2, 15000);
        countDown(wait);
        timer = setTimeout(open, wait);
      };
    }

    open();
    return {
      stop: function (text) {
        stopped = true;
        if (countdown) { clearInterval(countdown); countdown = null; }
        if (timer) clearTimeout(timer);
        if (socket) socket.close();
        show('finished', text);
      }
    };
  }

  // ---- liveness: "last heard 12 s ago", ticking on the server's clock ----

  function agoText(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + ' s ago';
    var m = Math.floor(s / 60);
    if (m < 60) return m + ' min ago';
    var h = Math.floor(m / 60);
    if (h < 48) return h + ' h ' + (m % 60) + ' min ago';
    return Math.floor(h / 24) + ' days ago';
  }

  function tickAgo() {
    document.querySelectorAll('time.ago').forEach(function (node) {
      var then = parseTime(node.getAttribute('datetime'));
      if (then !== null) node.textContent = agoText(Date.now() + offset - then);
    });
  }

  // A machine's liveness and last-heard time inside `scope`.
  function applyLiveness(scope, change) {
    if (!scope) return;
    var mark = scope.querySelector('.liveness');
    if (!mark) {
      mark = el('span', { 'class': 'liveness' });
      scope.prepend(mark, ' ');
    }
    mark.dataset.liveness = change.liveness;
    mark.textContent = change.liveness;
    var time = scope.querySelector('time.ago');
    if (change.last_seen && time) time.setAttribute('datetime', change.last_seen);
    tickAgo();
  }

  tickAgo();
  setInterval(tickAgo, 1000);

  // "N failed" beside a status badge in `cell`: shown while there are failures.
  function showFailures(cell, failed) {
    if (!cell) return;
    var mark = cell.querySelector('.failures');
    if (!(failed > 0)) {
      if (mark) mark.remove();
      return;
    }
    if (!mark) {
      mark = el('span', { 'class': 'failures', 'data-field': 'failed' });
      cell.append(' ', mark);
    }
    mark.textContent = failed + ' failed';
  }

  // ---- machines list ----

  function machinesPage() {
    var notice = document.getElementById('new-machines');
    var table = document.querySelector('table.machines');
    var pending = null;

    function machineRow(machine) {
      var url = prefix + '/machine/' + Number(machine.id);
      var liveness = el('td', { 'class': 'machine-liveness' });
      if (machine.liveness) applyLiveness(liveness, { liveness: machine.liveness, last_seen: machine.last_seen });
      return el('tr', { 'data-machine-id': Number(machine.id) },
        el('td', null, el('a', { href: url }, machine.name)),
        el('td', { 'class': 'machine-status' }, badge(machine.status)),
        liveness,
        el('td', null, el('a', { href: url + '/last' }, 'last run')));
    }

    // A machine this page does not show changed: re-read this page; add the rows that belong
    // here (a new machine on a page with room), and say so when one landed on another page.
    function reread() {
      pending = null;
      if (!table || !window.fetch) return;
      var query = '?page=' + table.dataset.pageNumber + '&page_size=' + table.dataset.pageSize +
        (table.dataset.liveness ? '&liveness=' + encodeURIComponent(table.dataset.liveness) : '');
      var countNode = document.querySelector('.pager [data-field="count"]');
      var before = countNode ? Number(countNode.textContent) : 0;
      fetch(prefix + '/api/v1/machines' + query, { credentials: 'same-origin' })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (page) {
          if (!page) return;
          var tbody = table.tBodies[0];
          var added = 0;
          page.items.forEach(function (machine, at) {
            if (tbody.querySelector('tr[data-machine-id="' + Number(machine.id) + '"]')) return;
            tbody.insertBefore(machineRow(machine), tbody.rows[at] || null);
            added += 1;
          });
          if (added) {
            table.hidden = false;
            var empty = document.getElementById('no-machines');
            if (empty) empty.hidden = true;
          }
          if (countNode) countNode.textContent = String(page.total);
          if (page.total > before + added && notice) notice.hidden = false;
        })
        .catch(function () { /* the next change tries again */ });
    }

    connect(body.dataset.ws, function (message) {
      var lively = message.machine_liveness;
      if (lively) {
        var cell = document.querySelector('tr[data-machine-id="' + Number(lively.id) + '"] .machine-liveness');
        applyLiveness(cell, lively);
        return;
      }
      var failures = message.machine_failures;
      if (failures) {
        showFailures(document.querySelector('tr[data-machine-id="' + Number(failures.id) + '"] .machine-status'),
          Number(failures.failed));
        return;
      }
      var change = message.machine_id_status;
      if (!change) return;
      var row = document.querySelector('tr[data-machine-id="' + Number(change.id) + '"]');
      if (row) setBadge(row.querySelector('.status'), change.status);
      else if (!pending) pending = setTimeout(reread, 300);
    });
  }

  // ---- a machine's runs ----

  function machinePage() {
    var table = document.querySelector('table.runs');
    var header = document.querySelector('h1.machine-title > .status');
    // The newest run shown: its status is the machine's.
    var newest = table && table.tBodies[0].rows[0] ? Number(table.tBodies[0].rows[0].dataset.runId) : 0;
    connect(body.dataset.ws, function (message) {
      if (message.machine_liveness) {
        applyLiveness(document.querySelector('p.machine-liveness'), message.machine_liveness);
      } else if (message.run_data) {
        var data = message.run_data;
        var row = document.querySelector('tr[data-run-id="' + Number(data.id) + '"]');
        if (Number(data.id) >= newest) {
          newest = Number(data.id);
          setBadge(header, data.status);
        }
        if (!row) return;
        setBadge(row.querySelector('.status'), data.status);
        showFailures(row.querySelector('[data-field="status"]'), Number(data.failed));
        var started = row.querySelector('[data-field="started"]');
        if (started && data.timestamp_start) started.textContent = displayTime(data.timestamp_start);
        var duration = row.querySelector('[data-field="duration"]');
        var from = parseTime(data.timestamp_start);
        var to = parseTime(data.timestamp_stop);
        if (duration && from !== null && to !== null) duration.textContent = clock(to - from);
      } else if (message.run_created && table && table.dataset.pageNumber === '1') {
        var run = message.run_created;
        if (document.querySelector('tr[data-run-id="' + Number(run.id) + '"]')) return;
        var url = prefix + '/machine/run_data/' + Number(run.id);
        var row = el('tr', { 'data-run-id': Number(run.id) },
          el('td', null, el('a', { href: url }, '#' + Number(run.id))),
          el('td', null, run.timestamp),
          el('td', { 'data-field': 'started' }, '—'),
          el('td', { 'data-field': 'duration' }, '—'),
          el('td', { 'class': 'num' }, Number(run.scenarios)),
          el('td', { 'class': 'num' }, Number(run.tests)),
          el('td', { 'data-field': 'status' }, badge(run.status)));
        table.tBodies[0].prepend(row);
        var count = document.querySelector('.pager [data-field="count"]');
        if (count) count.textContent = String(Number(count.textContent) + 1);
      }
    });
  }

  // ---- one run: the live last run, or a run page while its run is ongoing ----

  function runPage(kind) {
    var root = document.getElementById('run-root');
    var index = null;

    function reindex() {
      var section = document.getElementById('run');
      index = null;
      if (!section) return;
      index = { section: section, id: Number(section.dataset.runId), tests: new Map(), scenarios: new Map() };
      section.querySelectorAll('li.test').forEach(function (li) { index.tests.set(Number(li.dataset.testId), li); });
      section.querySelectorAll('li.scenario').forEach(function (li) { index.scenarios.set(Number(li.dataset.scenarioId), li); });
    }

    function field(scope, name) { return scope.querySelector('[data-field="' + name + '"]'); }

    function setText(node, text) { if (node) node.textContent = String(text); }

    function applyRun(status, counts, start, stop) {
      var s = index.section;
      s.dataset.status = status;
      setBadge(s.querySelector('.run-header h1 > .status'), status);
      STATUSES.forEach(function (name) {
        var cell = s.querySelector('td[data-count="' + name + '"]');
        setText(cell, Number(counts[name]) || 0);
        if (cell) cell.classList.toggle('zero', !(Number(counts[name]) > 0));
      });
      var parts = s.querySelector('svg[data-field="segments"]');
      if (parts) {
        var all = Math.max(sum(counts), 1);
        var x = 0;
        parts.querySelectorAll('rect').forEach(function (rect) {
          var width = Math.floor((Number(counts[rect.dataset.status]) || 0) * 1000 / all);
          rect.setAttribute('x', x);
          rect.setAttribute('width', width);
          x += width;
        });
      }
      var total = sum(counts);
      var done = finished(counts);
      var bar = field(s, 'progress');
      if (bar) { bar.max = Math.max(total, 1); bar.value = done; }
      setText(field(s, 'done'), done);
      setText(field(s, 'total'), total);
      setText(field(s, 'tests'), total);
      var failed = (Number(counts.failed) || 0) + (Number(counts.error) || 0);
      var failedNode = s.querySelector('.run-header h1 > [data-field="failed"]');
      if (failedNode) { failedNode.textContent = failed + ' failed'; failedNode.hidden = failed === 0; }
      showTabState(s, status, failed, done, total);
      setText(field(s, 'started'), start ? displayTime(start) : '—');
      setText(field(s, 'finished'), stop ? displayTime(stop) : '—');
      var duration = field(s, 'duration');
      if (duration) { duration.dataset.start = start || ''; duration.dataset.stop = stop || ''; }
      tick();
      if (kind === 'run' && !isOngoing(status) && live) live.stop('finished');
    }

    // A background tab tells when to look: its title and icon follow the run.
    // The SVG namespace is a name, not an address the page loads; kept out of the source's
    // text so that a search for other hosts finds none.
    var SVG_NS = ['http:', '', 'www.w3.org', '2000', 'svg'].join('/');
    var ICONS = { waiting: '…', running: '▶', passed: '✓', warning: '!', failed: '✗', error: '⚠', unknown: '?', cancelled: '⊘' };
    var tabShade = null;
    function showTabState(section, status, failed, done, total) {
      var machine = section.querySelector('.facts a');
      var name = machine ? machine.textContent : '';
      document.title = (ICONS[status] || '') + ' ' + (failed ? failed + ' failed' : status) +
        ' · ' + name + ' · ' + done + '/' + total + ' · stpt';
      var shade = failed ? 'failed' : status;
      // Only when it changes: reading a colour makes the browser settle every style first.
      if (shade === tabShade) return;
      tabShade = shade;
      var colour = getComputedStyle(document.documentElement).getPropertyValue('--st-' + shade).trim();
      if (!colour) return;
      var icon = document.querySelector('link[rel="icon"]');
      if (!icon) return;
      icon.type = 'image/svg+xml';
      icon.href = 'data:image/svg+xml,' + encodeURIComponent(
        '<svg xmlns="' + SVG_NS + '" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="' + colour + '"/></svg>');
    }

    function applyScenario(id, status, counts) {
      var li = index.scenarios.get(Number(id));
      if (!li) return;
      // The scenario with the running test opens by itself; one that closes stays as it is.
      if (status === 'running' && li.dataset.status !== 'running') {
        var box = li.querySelector('details.scenario-box');
        if (box) box.open = true;
      }
      li.dataset.status = status;
      setBadge(li.querySelector('h2 > .status'), status);
      setText(li.querySelector('.scenario-count [data-field="done"]'), finished(counts));
    }

    function applyTest(id, status) {
      var li = index.tests.get(Number(id));
      if (!li) return;
      li.dataset.status = status;
      setBadge(li.querySelector('.status'), status);
      markNewFailure(li, status);
    }

    // A test that passed in the previous run and fails now says so the moment it happens.
    function markNewFailure(li, status) {
      var passedBefore = li.dataset.previous === 'passed' || li.dataset.previous === 'warning';
      var failsNow = status === 'failed' || status === 'error';
      var badge = li.querySelector('.new-failure');
      if (passedBefore && failsNow && !badge) {
        li.appendChild(document.createTextNode(' '));
        li.appendChild(el('span', { 'class': 'badge new-failure' }, 'new failure'));
      } else if (badge && !failsNow) {
        badge.remove();
      }
    }

    function applyChange(change) {
      if (!index || index.id !== Number(change.run_id)) return;
      if (change.closed) {
        index.tests.forEach(function (li, id) {
          if (isOngoing(li.dataset.status)) applyTest(id, change.closed.status);
        });
      }
      (change.scenarios || []).forEach(function (s) { applyScenario(s.id, s.status, s.counts); });
      (change.tests || []).forEach(function (t) { applyTest(t.id, t.status); });
      if (change.closed && change.closed.silent_since) showSilent(change.closed.silent_since);
      applyRun(change.status, change.counts, change.timestamp_start, change.timestamp_stop);
      scheduleEta();
    }

    // The server closed the run because its runner went silent.
    function showSilent(since) {
      var header = index && index.section.querySelector('.run-header');
      if (!header || field(header, 'silent')) return;
      header.append(el('p', { 'class': 'notice silent', 'data-field': 'silent' },
        'Closed by the server: the runner went silent at ',
        el('time', { datetime: since }, displayTime(since)),
        ', and its tests still going were marked unknown.'));
    }

    // The live page moves on to the machine's next run: what the one it showed ended as
    // stays in view, with a link to it.
    function showPreviousRun(shown) {
      var notice = document.getElementById('previous-run');
      if (!notice) return;
      var status = shown.section.dataset.status;
      var failedNode = shown.section.querySelector('.run-header h1 > [data-field="failed"]');
      var failed = failedNode && !failedNode.hidden ? ' · ' + failedNode.textContent : '';
      notice.replaceChildren(
        'Run #' + shown.id + ' ended ', badge(status), failed, '. ',
        el('a', { href: prefix + '/machine/run_data/' + shown.id + '/' }, 'See run #' + shown.id),
        ' · now showing the next run.');
      notice.hidden = false;
    }

    // A snapshot (whole, or an outline whose tests' statuses follow in parts). For another
    // run than the one shown (the live page's machine posted a new plan), the page reads
    // the server's markup of it and holds the socket's messages meanwhile, so the
    // snapshot, its parts and the changes after it still apply in order.
    function applySnapshot(snapshot) {
      setOffset(snapshot.now);
      var run = snapshot.run;
      if (!run) {
        if (kind === 'last' && index) showNoRun();
        return;
      }
      if (!index || index.id !== Number(run.summary.id)) {
        if (kind !== 'last' || fetchedRun === Number(run.summary.id)) return;
        held = [{ snapshot: snapshot }];
        readRun(Number(run.summary.id));
        return;
      }
      run.scenarios.forEach(function (scenario) {
        applyScenario(scenario.id, scenario.status, scenario.counts);
        (scenario.tests || []).forEach(function (test) { applyTest(test.id, test.status); });
      });
      var summary = run.summary;
      if (summary.went_silent_at) showSilent(summary.went_silent_at);
      applyRun(summary.status, summary.statistics.counts, summary.timestamp_start, summary.timestamp_stop);
      scheduleEta();
    }

    function applyPart(part) {
      if (!index || index.id !== Number(part.run_id)) return;
      Object.keys(part.statuses).forEach(function (status) {
        part.statuses[status].forEach(function (id) { applyTest(id, status); });
      });
    }

    var held = null;
    var fetchedRun = null;

    function readRun(runId) {
      var shown = index;
      fetchedRun = runId;
      fetch(location.href, { credentials: 'same-origin' })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          var fresh = html === null ? null : new DOMParser().parseFromString(html, 'text/html');
          var freshRoot = fresh && fresh.getElementById('run-root');
          if (!freshRoot) throw new Error('no run in the page read');
          // Same-origin markup the server rendered with every runner string escaped.
          if (shown) showPreviousRun(shown);
          root.replaceChildren.apply(root, Array.prototype.slice.call(freshRoot.childNodes));
          document.title = fresh.title;
          reindex();
        })
        .then(function () {
          var messages = held;
          held = null;
          messages.forEach(onMessage);
        }, function () {
          // Without the new run's markup the page cannot follow it: load it whole.
          location.reload();
        });
    }

    function showNoRun() {
      root.replaceChildren(el('p', { 'class': 'empty', id: 'no-run' }, 'This machine has no run yet.'));
      reindex();
    }

    function onMessage(message) {
      if (held) held.push(message);
      else if (message.snapshot) applySnapshot(message.snapshot);
      else if (message.snapshot_part) applyPart(message.snapshot_part);
      else if (message.run_changed) applyChange(message.run_changed);
      else if (message.run_created && kind === 'run') {
        var notice = document.getElementById('newer-run');
        if (notice) notice.hidden = false;
      }
    }

    // ---- when will it finish: fetched after changes, counted down in between ----

    var eta = null;
    var etaTimer = null;

    function scheduleEta() {
      if (etaTimer || !index) return;
      etaTimer = setTimeout(fetchEta, 1500);
    }

    function fetchEta() {
      etaTimer = null;
      if (!index || !window.fetch) return;
      var runId = index.id;
      fetch(prefix + '/api/v1/runs/' + runId + '/eta', { credentials: 'same-origin' })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (answer) {
          if (!answer || !index || index.id !== runId) return;
          eta = { answer: answer, at: Date.now() };
          showEta();
        })
        .catch(function () { /* the next change tries again */ });
    }

    function minutes(seconds) {
      var m = Math.round(seconds / 60);
      if (m < 1) return 'under a minute';
      if (m < 60) return m + ' min';
      return Math.floor(m / 60) + ' h ' + pad(m % 60) + ' min';
    }

    function showEta() {
      var box = index && field(index.section, 'eta');
      if (!box || !eta) return;
      var answer = eta.answer;
      var passed = (Date.now() - eta.at) / 1000;
      if (!isOngoing(index.section.dataset.status) || answer.remaining_seconds === null || answer.remaining_seconds === undefined) {
        box.hidden = true;
        return;
      }
      box.hidden = false;
      var left = Math.max(0, answer.remaining_seconds - passed);
      var ends = parseTime(answer.ends_at);
      var end = ends === null ? '' : new Date(ends);
      setText(field(box, 'eta-left'), '≈ ' + minutes(left) + ' left' +
        (end ? ', ends ≈ ' + pad(end.getHours()) + ':' + pad(end.getMinutes()) : '') +
        (answer.rough ? ' (rough: some tests have no history yet)' : ''));
      var bar = field(box, 'eta-progress');
      if (bar && answer.progress !== null) bar.value = Math.min(1, answer.progress);
      var running = answer.running;
      var text = '';
      if (running) {
        var elapsed = running.elapsed_seconds + passed;
        text = 'running test ' + clock(elapsed * 1000) +
          (running.usual_seconds !== null ? ' of usually ' + clock(running.usual_seconds * 1000) : '');
        if (running.overrunning || (running.usual_seconds && elapsed > 3 * running.usual_seconds)) text += ' — overrunning';
      }
      var node = field(box, 'eta-running');
      setText(node, text);
      if (node) node.dataset.overrunning = running && running.overrunning ? 'true' : 'false';
    }

    function tick() {
      if (liveNow) showEta();
      document.querySelectorAll('[data-field="duration"]').forEach(function (node) {
        var start = parseTime(node.dataset.start);
        if (start === null) { node.textContent = '—'; return; }
        var stop = parseTime(node.dataset.stop);
        // Disconnected, a running duration stays where it was until the server is heard.
        if (stop === null && !liveNow) return;
        node.textContent = clock((stop === null ? Date.now() + offset : stop) - start);
      });
    }

    // Shows test `li`, opening its scenario if collapsed.
    function reveal(li) {
      if (!li) return;
      var box = li.closest('details');
      if (box) box.open = true;
      li.scrollIntoView({ block: 'center' });
      li.classList.add('target');
    }

    root.addEventListener('click', function (event) {
      var jump = event.target.closest && event.target.closest('a[data-jump="running"]');
      if (!jump) return;
      event.preventDefault();
      reveal(root.querySelector('li.test[data-status="running"]'));
    });
    // A deep link to a test in a collapsed scenario.
    if (/^#test-\d+$/.test(location.hash)) reveal(document.getElementById(location.hash.slice(1)));

    reindex();
    scheduleEta();
    setInterval(tick, 1000);
    var live = null;
    if (!body.dataset.ws) return;
    live = connect(body.dataset.ws, onMessage);
  }

  // ---- the wall: its grid is re-read from the server on machine changes and every 10 s ----

  function wallPage() {
    var wall = document.getElementById('wall');
    if (!wall || !window.fetch) return;
    var pending = null;
    function refresh() {
      pending = null;
      fetch(wall.dataset.gridUrl, { credentials: 'same-origin' })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (html === null) return;
          // Same-origin HTML the server rendered with every runner string escaped.
          var holder = document.createElement('div');
          holder.innerHTML = html;
          wall.replaceChildren.apply(wall, Array.prototype.slice.call(holder.childNodes));
        })
        .catch(function () { /* the next tick tries again */ });
    }
    function soon() {
      if (!pending) pending = setTimeout(refresh, 1000);
    }
    setInterval(refresh, 10000);
    if (body.dataset.ws) connect(body.dataset.ws, soon);
  }

  // ---- every page ----

  document.querySelectorAll('select[data-autosubmit]').forEach(function (select) {
    // The server remembers the choice in a cookie when it sees `page_size`.
    select.addEventListener('change', function () { select.form.submit(); });
  });

  if (window.hljs) {
    document.querySelectorAll('pre.script code').forEach(function (code) { window.hljs.highlightElement(code); });
  }

  if (pageKind === 'machines' && body.dataset.ws) machinesPage();
  else if (pageKind === 'machine' && body.dataset.ws) machinePage();
  else if (pageKind === 'last' || pageKind === 'run') runPage(pageKind);
  else if (pageKind === 'wall') wallPage();
})();
