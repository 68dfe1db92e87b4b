// Shows a file's upload as it goes: the form is sent by XMLHttpRequest (same origin, same
// session, the same form fields) so that a progress bar can follow the bytes, then the page
// the server answers is shown as if the form had been sent. Without JavaScript the form is
// sent as it is, and works the same, without the bar.
(function () {
  "use strict";
  document.querySelectorAll("form[data-upload]").forEach(function (form) {
    var bar = form.querySelector(".upload-progress");
    var status = form.querySelector(".upload-status");
    form.addEventListener("submit", function (event) {
      if (!window.FormData || !window.XMLHttpRequest) return;
      event.preventDefault();
      var xhr = new XMLHttpRequest();
      var button = form.querySelector("button[type=submit]");
      xhr.open("POST", form.action);
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable && bar) bar.value = Math.round((e.loaded / e.total) * 100);
      });
      xhr.addEventListener("load", function () {
        if (xhr.status === 200 && xhr.responseURL && xhr.responseURL !== form.action) {
          window.location.assign(xhr.responseURL); // the redirect after a file was taken
          return;
        }
        document.open(); // a refusal: the server's page, saying why beside the field
        document.write(xhr.responseText);
        document.close();
      });
      xhr.addEventListener("error", function () {
        if (status) status.textContent = status.getAttribute("data-failed");
        if (bar) bar.hidden = true;
        if (button) button.disabled = false;
      });
      if (bar) { bar.hidden = false; bar.value = 0; }
      if (status) status.textContent = status.getAttribute("data-sending");
      if (button) button.disabled = true;
      xhr.send(new FormData(form));
    });
  });
})();
