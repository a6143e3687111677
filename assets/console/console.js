// yizhan console: progressive enhancement only. Every form works without
// this file; with it, the hours preview follows the editor as it is edited,
// and check-in codes can be read with the camera where BarcodeDetector exists.
(function () {
  "use strict";

  // The hours editor: ask the server for the 14-day preview of what is being
  // edited (it composes the rows into opening_hours: one rule, on the server).
  var form = document.getElementById("hours-form");
  if (form && window.fetch && window.URLSearchParams) {
    var raw = form.querySelector("[name=opening_hours]");
    var rowsInitial = form.querySelector("[name=rows_initial]");
    var rawInitial = form.querySelector("[name=raw_initial]");
    var timer = null, seq = 0, lastEdited = "rows";
    var refresh = function () {
      var params = new URLSearchParams(new FormData(form));
      params.delete("csrf");
      var mine = ++seq;
      fetch(form.getAttribute("data-preview") + "?" + params.toString(), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          if (mine !== seq) return;
          var box = document.createElement("div");
          box.innerHTML = html;
          var result = box.querySelector("#preview-result");
          var fresh = box.querySelector("#preview");
          var old = document.getElementById("preview");
          if (!result || !fresh || !old) return;
          var oh = result.getAttribute("data-opening-hours");
          var rows = result.getAttribute("data-rows");
          if (lastEdited === "rows" && oh) {
            // The rows were edited: the raw field shows what they mean.
            raw.value = oh;
            rawInitial.value = oh;
          } else if (lastEdited === "raw" && rows) {
            // The raw field was edited: it wins; the rows count as unchanged.
            rowsInitial.value = rows;
          }
          old.replaceWith(fresh);
        })
        .catch(function () { /* the server-rendered preview stays */ });
    };
    var changed = function (e) {
      if (!e.target.name || e.target.name === "csrf") return;
      lastEdited = e.target === raw ? "raw" : "rows";
      clearTimeout(timer);
      timer = setTimeout(refresh, 250);
    };
    form.addEventListener("input", changed);
    form.addEventListener("change", changed);
  }

  // Check-in by camera, where the browser can read barcodes and QR codes.
  var scan = document.getElementById("scan");
  var video = document.getElementById("scan-video");
  var code = document.getElementById("code");
  if (scan && video && code && "BarcodeDetector" in window && navigator.mediaDevices) {
    scan.hidden = false;
    var stream = null;
    var stop = function () {
      if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
      stream = null;
      video.hidden = true;
      scan.textContent = "用摄像头扫码";
    };
    scan.addEventListener("click", function () {
      if (stream) { stop(); return; }
      var detector = new window.BarcodeDetector({ formats: ["qr_code", "code_128", "data_matrix"] });
      navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } }).then(function (s) {
        stream = s;
        video.srcObject = s;
        video.hidden = false;
        scan.textContent = "停止扫码";
        return video.play().then(function () {
          var tick = function () {
            if (!stream) return;
            detector.detect(video).then(function (found) {
              if (found.length && found[0].rawValue) {
                code.value = found[0].rawValue.trim();
                stop();
                document.getElementById("checkin-form").submit();
              } else {
                requestAnimationFrame(tick);
              }
            }).catch(function () { requestAnimationFrame(tick); });
          };
          tick();
        });
      }).catch(function () { stop(); alert("无法打开摄像头，请手动输入签到码。"); });
    });
  }
})();
