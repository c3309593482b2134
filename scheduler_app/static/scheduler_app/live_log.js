/* Follows a run's output: asks GET /api/v1/runs/{id}/log/?offset=N for what came after
 * the last answer's next_offset, appends it (as text: never HTML), scrolls along unless
 * the reader scrolled up, and stops when the run has ended.
 *
 * As the server shows output (scheduler_app/humanize.py): a carriage return starts its
 * line over, so a line shows its last non-empty rewrite ("10%\r20%\r30%\n" is "30%");
 * the line not ended yet is kept aside and redrawn as more of it comes. */
(function () {
  "use strict";
  function lastRewrite(line) {
    var rewrites = line.split("\r").filter(function (part) { return part !== ""; });
    return rewrites.length ? rewrites[rewrites.length - 1] : "";
  }

  // Each line's last rewrite; C0 controls but tab and newline, and DEL, as their Control Pictures.
  function visibleControls(text) {
    return text.split("\n").map(lastRewrite).join("\n").replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, function (c) {
      var code = c.charCodeAt(0);
      return String.fromCharCode(code === 0x7f ? 0x2421 : 0x2400 + code);
    });
  }

  function LiveLog(pre, url, options) {
    this.pre = pre;
    this.url = url;
    this.offset = options.offset || 0;
    this.every = options.every || 1000;
    this.onEnd = options.onEnd || function () {};
    this.onData = options.onData || function () {};
    this.timer = null;
    this.stopped = false;
    this.unended = "";  // the raw text of the line not ended yet, and the node showing it
    this.unendedNode = null;
  }

  LiveLog.prototype.atBottom = function () {
    var pre = this.pre;
    return pre.scrollHeight - pre.scrollTop - pre.clientHeight < 8;
  };

  LiveLog.prototype.append = function (data) {
    var follow = this.atBottom();
    if (data.offset < this.offset) {  // the stored output was cut: read again whole
      this.pre.textContent = "";
      this.unended = "";
      this.unendedNode = null;
    }
    if (data.output) this.write(data.output);
    this.offset = data.next_offset;
    if (follow) {
      this.pre.scrollTop = this.pre.scrollHeight;
    }
  };

  // Ended lines are drawn once; the unended line's node is redrawn until its newline comes.
  LiveLog.prototype.write = function (output) {
    var text = this.unended + output;
    var end = text.lastIndexOf("\n") + 1;
    this.unended = text.slice(end);
    if (end > 0) {
      this.redraw(text.slice(0, end));  // the ended lines, the unended one before among them
      this.unendedNode = null;
    }
    if (this.unended) this.redraw(this.unended);
  };

  // Draws raw output in the unended line's node (made when there is none).
  LiveLog.prototype.redraw = function (raw) {
    if (!this.unendedNode) this.unendedNode = this.pre.appendChild(document.createTextNode(""));
    this.unendedNode.data = visibleControls(raw);
  };

  LiveLog.prototype.poll = function () {
    var self = this;
    if (self.stopped) return;
    fetch(self.url + "?offset=" + self.offset, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) {
        if (!response.ok) throw new Error("log: HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        self.append(data);
        self.onData(data);
        if (data.finished) {
          self.stop();
          self.onEnd(data);
        } else {
          self.schedule();
        }
      })
      .catch(function () { self.schedule(self.every * 3); });  // away for a moment: try again later
  };

  LiveLog.prototype.schedule = function (delay) {
    var self = this;
    if (!self.stopped) self.timer = window.setTimeout(function () { self.poll(); }, delay || self.every);
  };

  LiveLog.prototype.start = function () {
    this.pre.scrollTop = this.pre.scrollHeight;
    this.poll();
    return this;
  };

  LiveLog.prototype.stop = function () {
    this.stopped = true;
    if (this.timer) window.clearTimeout(this.timer);
  };

  LiveLog.visibleControls = visibleControls;
  window.CronfleetLiveLog = LiveLog;
})();
