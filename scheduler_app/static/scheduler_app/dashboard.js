/* The dashboard: polls GET /api/v1/dashboard/ and draws it. Every name and message from
 * the server goes into the page as text (textContent), never as HTML. */
(function () {
  "use strict";
  var poll, colours, charts = {}, followers = {}, timer = null;

  function css(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function idUrl(template, id) { return template.replace(/\/0\//, "/" + id + "/"); }

  function localTime(iso, withDay) {
    var date = new Date(iso);
    var options = {hour: "2-digit", minute: "2-digit"};
    if (withDay) { options.month = "short"; options.day = "numeric"; }
    return date.toLocaleString([], options);
  }

  function badge(status) {
    var span = el("span", {"class": "cf-badge"}, status.replace("_", " "));
    span.style.background = colours[status] || "#333";
    return span;
  }

  function axisColours() {
    return {text: css("--body-quiet-color", "#666"), grid: css("--hairline-color", "#e8e8e8")};
  }

  function drawHours(hours) {
    var statuses = Object.keys(colours).filter(function (status) {
      return hours.some(function (h) { return h.by_status[status]; });
    });
    var total = hours.reduce(function (sum, h) {
      return sum + Object.values(h.by_status).reduce(function (a, b) { return a + b; }, 0);
    }, 0);
    document.getElementById("cf-hours-total").textContent = "(" + total + " runs)";
    var data = {
      labels: hours.map(function (h) { return localTime(h.hour); }),
      datasets: statuses.map(function (status) {
        return {label: status.replace("_", " "), backgroundColor: colours[status],
                data: hours.map(function (h) { return h.by_status[status] || 0; })};
      }),
    };
    var axis = axisColours();
    if (charts.hours) {
      charts.hours.data = data;
      charts.hours.update("none");
      return;
    }
    charts.hours = new window.Chart(document.getElementById("cf-hours"), {
      type: "bar",
      data: data,
      options: {
        maintainAspectRatio: false, animation: false,
        plugins: {legend: {labels: {color: axis.text}}},
        scales: {
          x: {stacked: true, ticks: {color: axis.text}, grid: {color: axis.grid}},
          y: {stacked: true, beginAtZero: true, ticks: {color: axis.text, precision: 0}, grid: {color: axis.grid}},
        },
      },
    });
  }

  function drawUpcoming(upcoming, generatedAt) {
    var empty = !upcoming.some(function (job) { return job.at.length; });
    document.getElementById("cf-upcoming-empty").hidden = !empty;
    document.getElementById("cf-upcoming-box").hidden = empty;
    if (empty) return;
    var labels = upcoming.map(function (job) { return job.job_name + " #" + job.job + (job.more ? " (more)" : ""); });
    var box = document.getElementById("cf-upcoming-box");
    box.style.height = Math.max(140, 60 + 28 * labels.length) + "px";
    var start = new Date(generatedAt).getTime();
    var points = [];
    upcoming.forEach(function (job, index) {
      job.at.forEach(function (at) { points.push({x: new Date(at).getTime(), y: labels[index], job: job.job}); });
    });
    var data = {datasets: [{label: "fires", data: points, backgroundColor: colours.running, pointRadius: 4, pointHoverRadius: 6}]};
    var axis = axisColours();
    var options = {
      maintainAspectRatio: false, animation: false,
      plugins: {
        legend: {display: false},
        tooltip: {callbacks: {label: function (ctx) { return ctx.raw.y + ": " + new Date(ctx.raw.x).toLocaleString(); }}},
      },
      onClick: function (event, elements) {
        if (elements.length) window.location.href = idUrl(poll.job, points[elements[0].index].job);
      },
      scales: {
        x: {type: "linear", min: start, max: start + 24 * 3600 * 1000,
            ticks: {color: axis.text, stepSize: 3 * 3600 * 1000, callback: function (value) { return localTime(value); }},
            grid: {color: axis.grid}},
        y: {type: "category", labels: labels, offset: true, ticks: {color: axis.text}, grid: {color: axis.grid}},
      },
    };
    if (charts.upcoming) charts.upcoming.destroy();
    charts.upcoming = new window.Chart(document.getElementById("cf-upcoming"), {type: "scatter", data: data, options: options});
  }

  function fillTable(id, rows, makeRow) {
    var body = document.querySelector("#" + id + " tbody");
    body.replaceChildren.apply(body, rows.map(makeRow));
    document.getElementById(id).hidden = !rows.length;
    document.getElementById(id + "-empty").hidden = rows.length > 0;
  }

  function linkCell(url, text) {
    var td = el("td");
    td.appendChild(el("a", {href: url}, text));
    return td;
  }

  function jobRow(job) {
    var tr = el("tr");
    tr.appendChild(linkCell(idUrl(poll.job, job.job), job.job_name));
    tr.appendChild(el("td", {"class": "cf-num"}, job.runs));
    tr.appendChild(el("td", {"class": "cf-num"}, job.failed));
    var rate = el("td", {"class": "cf-rate"});
    if (job.success_rate === null) {
      rate.textContent = "-";
    } else {
      var percent = Math.round(job.success_rate * 1000) / 10;
      var meter = el("span", {"class": "cf-meter"});
      var fill = el("span", {"class": "cf-meter-fill"});
      fill.style.width = percent + "%";
      fill.style.background = percent >= 99 ? colours.succeeded : percent >= 90 ? colours.timed_out : colours.failed;
      meter.appendChild(fill);
      rate.appendChild(meter);
      rate.appendChild(el("span", {}, percent + "%"));
    }
    tr.appendChild(rate);
    tr.appendChild(el("td", {"class": "cf-num"}, job.p95));
    return tr;
  }

  function failureRow(run) {
    var tr = el("tr");
    tr.appendChild(linkCell(idUrl(poll.run, run.id), "#" + run.id));
    tr.appendChild(linkCell(idUrl(poll.job, run.job), run.job_name));
    var status = el("td");
    status.appendChild(badge(run.status));
    tr.appendChild(status);
    tr.appendChild(el("td", {"class": "cf-nowrap"}, localTime(run.finished_at || run.queued_at, true)));
    var error = window.CronfleetLiveLog.visibleControls(run.error || "exit code " + run.exit_code);
    tr.appendChild(el("td", {"class": "cf-error-cell", title: error}, error));
    return tr;
  }

  function showRunning(running) {
    var box = document.getElementById("cf-running");
    document.getElementById("cf-running-empty").hidden = running.length > 0;
    var shown = {};
    running.forEach(function (run) {
      shown[run.id] = true;
      if (followers[run.id]) return;
      var card = el("div", {"class": "cf-running-run", id: "cf-running-" + run.id});
      var head = el("div", {"class": "cf-running-head"});
      head.appendChild(el("a", {href: idUrl(poll.run, run.id)}, "#" + run.id + " " + run.job_name));
      head.appendChild(el("span", {"class": "cf-quiet"}, " on " + (run.worker || "?") + ", started " + localTime(run.started_at || run.queued_at, true)));
      var pre = el("pre", {"class": "cf-pre cf-log cf-log-small"});
      card.appendChild(head);
      card.appendChild(pre);
      box.appendChild(card);
      followers[run.id] = new window.CronfleetLiveLog(pre, idUrl(poll.log, run.id), {every: poll.log_every_ms}).start();
    });
    Object.keys(followers).forEach(function (id) {
      if (shown[id]) return;  // ended: stop following, take it off after the next poll
      followers[id].stop();
      delete followers[id];
      var card = document.getElementById("cf-running-" + id);
      if (card) card.remove();
    });
  }

  function showWarnings(warnings) {
    var list = document.getElementById("cf-warnings");
    list.replaceChildren.apply(list, warnings.map(function (w) { return el("li", {"class": "cf-warning"}, w); }));
  }

  function draw(data) {
    drawHours(data.hours);
    drawUpcoming(data.upcoming, data.generated_at);
    fillTable("cf-jobs", data.jobs, jobRow);
    fillTable("cf-failures", data.failures, failureRow);
    showRunning(data.running);
    showWarnings(data.warnings);
    document.getElementById("cf-updated").textContent = "updated " + new Date(data.generated_at).toLocaleTimeString();
  }

  function refresh() {
    window.clearTimeout(timer);
    var window_ = document.getElementById("cf-window").value;
    fetch(poll.figures + "?window=" + encodeURIComponent(window_), {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(draw)
      .catch(function (error) { document.getElementById("cf-updated").textContent = "not updated: " + error.message; })
      .finally(function () {  // one timer, however many answers come back
        window.clearTimeout(timer);
        timer = window.setTimeout(refresh, poll.every_ms);
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    poll = JSON.parse(document.getElementById("cf-poll").textContent);
    colours = JSON.parse(document.getElementById("cf-colours").textContent);
    document.getElementById("cf-window").addEventListener("change", refresh);
    refresh();
  });
})();
