/* A run's admin page: while the run is pending, its output follows live; when it ends,
 * the page reloads once to show the final status, duration and exit code. */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var config = JSON.parse(document.getElementById("cf-follow").textContent);
    var pre = document.getElementById("cf-log");
    pre.scrollTop = pre.scrollHeight;
    if (config.finished) return;
    var state = document.getElementById("cf-follow-state");
    new window.CronfleetLiveLog(pre, config.log, {
      offset: config.offset,
      every: config.every_ms,
      onEnd: function (data) {
        state.textContent = "ended: " + data.status.replace("_", " ");
        window.setTimeout(function () { window.location.reload(); }, 1500);
      },
    }).start();
  });
})();
