// Keyboard shortcuts of the review page, wired through data- attributes (the CSP forbids inline
// script). An element with data-key="x" answers the key x; data-key-action says how:
// "click" (default), "focus", "open" (a <details>, focusing its [data-autofocus]) or "help".
// j / k move between [data-step] elements. Keys typed into a form field are left alone.
(function () {
  "use strict";

  var currentStep = -1;

  function isTyping(el) {
    if (!el || !el.tagName) return false;
    return el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName);
  }

  function toggleHelp(force) {
    var help = document.querySelector("[data-help]");
    if (!help) return;
    help.hidden = force === undefined ? !help.hidden : !force;
  }

  function moveStep(delta) {
    var steps = document.querySelectorAll("[data-step]");
    if (!steps.length) return;
    currentStep = Math.max(0, Math.min(steps.length - 1, currentStep + delta));
    steps.forEach(function (s, i) { s.classList.toggle("current-step", i === currentStep); });
    steps[currentStep].focus({ preventScroll: true });
    steps[currentStep].scrollIntoView({ block: "start" });
  }

  function activate(el) {
    var action = el.getAttribute("data-key-action") || "click";
    if (action === "focus") {
      el.focus();
      if (typeof el.setSelectionRange === "function") {
        el.setSelectionRange(el.value.length, el.value.length);
      }
    } else if (action === "open") {
      var first = el.querySelector("[data-autofocus]") || el.querySelector("input, select, textarea, button");
      var focusFirst = function () { if (first) first.focus(); };
      // The content of a closed <details> cannot take focus until it has been shown.
      if (el.open) {
        focusFirst();
      } else {
        el.addEventListener("toggle", focusFirst, { once: true });
        el.open = true;
      }
    } else if (action === "help") {
      toggleHelp();
    } else {
      el.click();
    }
  }

  function onKey(ev) {
    var target = ev.target;
    if (isTyping(target)) {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey) && target.hasAttribute("data-submit-on-ctrl-enter")) {
        ev.preventDefault();
        target.form.requestSubmit();
      } else if (ev.key === "Escape") {
        target.blur();
      }
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "Escape") { toggleHelp(false); return; }
    if (ev.key === "j" || ev.key === "k") {
      ev.preventDefault();
      moveStep(ev.key === "j" ? 1 : -1);
      return;
    }
    var el = document.querySelector('[data-key="' + CSS.escape(ev.key) + '"]');
    if (!el || el.disabled) return;
    ev.preventDefault();
    activate(el);
  }

  document.addEventListener("keydown", onKey);
  // A new candidate was swapped in: start again from its first step, with nothing focused
  // (htmx gives focus back to a field with the same id, which would swallow the next key).
  document.addEventListener("htmx:afterSwap", function () {
    currentStep = -1;
    var active = document.activeElement;
    if (active && active !== document.body && active.closest("[data-review]")) active.blur();
  });
})();
