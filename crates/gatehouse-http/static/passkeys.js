// The hosted pages' passkey steps: the one script they run, served by Gatehouse itself
// and allowed by a per-page nonce in the Content-Security-Policy. A form marked
// `data-passkey` asks the browser's WebAuthn API when submitted, puts the answer
// (`PublicKeyCredential.toJSON()`) in its `credential` field, and submits it:
//   get       the request options are in `data-options` (a second factor);
//   discover  the options come from `data-options-url` (a passwordless sign-in);
//   create    the creation options come from `data-options-url` (a registration).
(function () {
  "use strict";

  function show(form, message) {
    var alert = form.querySelector("[data-passkey-error]");
    if (alert) {
      alert.textContent = message;
      alert.hidden = false;
    }
  }

  async function options(form) {
    if (form.dataset.options) {
      return JSON.parse(form.dataset.options);
    }
    var body = new URLSearchParams();
    body.set("csrf", form.elements.csrf.value);
    var res = await fetch(form.dataset.optionsUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: body,
    });
    if (!res.ok) {
      throw new Error("options " + res.status);
    }
    return (await res.json()).publicKey;
  }

  async function ask(form) {
    var publicKey = await options(form);
    var credential;
    if (form.dataset.passkey === "create") {
      credential = await navigator.credentials.create({
        publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(publicKey),
      });
    } else {
      credential = await navigator.credentials.get({
        publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(publicKey),
      });
    }
    form.elements.credential.value = JSON.stringify(credential.toJSON());
    form.submit();
  }

  document.querySelectorAll("form[data-passkey]").forEach(function (form) {
    if (!window.PublicKeyCredential) {
      show(form, "This browser cannot use passkeys.");
      return;
    }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      ask(form).catch(function (e) {
        show(form, "The passkey could not be used (" + (e && e.name ? e.name : "error") + "). Try again.");
      });
    });
  });
})();
