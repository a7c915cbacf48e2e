// The review page's keyboard, wired through data- attributes (the CSP forbids inline script).
//
// One contract on every item (blind audit items included):
//   an element with data-key="x" answers the key x; data-key-action says how:
//     "click" (the default), "edit" (focus a text box, caret at the end), "picker" (open a
//     <details> of numbered choices: 1-9 picks one and sends it, Enter sends the highlighted
//     one, Esc closes with nothing sent), "toggle" (open or close a <details>), "help" (the
//     keys dialog). A <details> without an action opens or closes (e.g. guidelines, g).
//   j / k move between [data-step] elements, o opens or closes the current step's
//   [data-observation]; Ctrl+Enter saves an edit and Esc cancels it.
// Keys typed into a text field are the field's; every other key works wherever the focus is.
// Single-key shortcuts can be turned off (WCAG 2.1.4): the choice is kept on the server and
// mirrored in localStorage. After a decision htmx swaps the next item in: focus moves to its
// heading and the page's live region says which item it is.
(function () {
  "use strict";

  var STORAGE_KEY = "agenther.singleKeyShortcuts";
  var currentStep = -1;
  var busy = false; // a decision is on its way: keys wait for the next item

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $$(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }

  function isTyping(el) {
    if (!el || !el.tagName) return false;
    if (el.isContentEditable || el.tagName === "TEXTAREA" || el.tagName === "SELECT") return true;
    if (el.tagName !== "INPUT") return false;
    return !/^(radio|checkbox|button|submit|reset|file|range|color|image)$/.test(el.type);
  }

  function isControl(el) {
    return !!(el && el.closest && el.closest("a[href], button, summary, input, select, textarea"));
  }

  // -- the live region and focus -------------------------------------------------------------

  function announce(text) {
    var region = document.getElementById("announcer");
    if (!region || !text) return;
    region.textContent = "";
    // A new text node a moment later, so the same words twice are still read out.
    window.setTimeout(function () { region.textContent = text; }, 60);
  }

  function focusHeading() {
    var heading = document.getElementById("item-heading");
    if (heading) heading.focus({ preventScroll: true });
  }

  // -- single-key shortcuts on or off --------------------------------------------------------

  function keybar() { return $("[data-keybar]"); }

  function shortcutsOn() {
    var bar = keybar();
    return !!bar && bar.getAttribute("data-shortcuts") !== "off";
  }

  function showShortcuts(on) {
    var bar = keybar();
    if (!bar) return;
    bar.setAttribute("data-shortcuts", on ? "on" : "off");
    var toggle = $("[data-shortcuts-toggle]", bar);
    if (toggle) toggle.setAttribute("aria-pressed", on ? "true" : "false");
    var next = $('[data-shortcuts-form] input[name="single_key_shortcuts"]', bar);
    if (next) next.value = on ? "off" : "on";
    try { window.localStorage.setItem(STORAGE_KEY, on ? "on" : "off"); } catch (e) { /* private mode */ }
  }

  function toggleShortcuts(form) {
    var on = !shortcutsOn();
    showShortcuts(on);
    announce("Single-key shortcuts " + (on ? "on" : "off") + ".");
    var data = new FormData(form);
    data.set("single_key_shortcuts", on ? "on" : "off");
    window.fetch(form.action, {
      method: "POST", body: data, credentials: "same-origin", headers: { "HX-Request": "true" }
    });
  }

  // -- help ------------------------------------------------------------------------------------

  function helpDialog() { return $("dialog[data-help]"); }

  function toggleHelp() {
    var dialog = helpDialog();
    if (!dialog) return;
    if (dialog.open) dialog.close();
    else dialog.showModal();
  }

  // -- steps -----------------------------------------------------------------------------------

  function markStep(index) {
    var steps = $$("[data-step]");
    if (!steps.length) return null;
    currentStep = Math.max(0, Math.min(steps.length - 1, index));
    steps.forEach(function (s, i) { s.classList.toggle("current-step", i === currentStep); });
    return steps[currentStep];
  }

  function moveStep(delta) {
    var step = markStep(currentStep + delta);
    if (!step) return;
    step.focus({ preventScroll: true });
    step.scrollIntoView({ block: "start" });
  }

  function toggleObservation() {
    var step = markStep(currentStep < 0 ? 0 : currentStep);
    var observation = step && $("[data-observation]", step);
    if (!observation) return;
    observation.open = !observation.open;
    step.focus({ preventScroll: true });
    observation.scrollIntoView({ block: "nearest" });
  }

  // -- pickers: the reasons (r) and the other goals (c) ---------------------------------------

  function openPickerEl() { return $("details[open][data-key-action='picker']"); }

  function openPicker(details) {
    $$("details[open][data-key-action='picker']").forEach(function (other) {
      if (other !== details) other.open = false;
    });
    details.open = true; // its content can take focus at once: no waiting for "toggle"
    var first = $("[data-choice]:checked", details) || $("[data-choice]", details);
    (first || $("summary", details)).focus();
    details.scrollIntoView({ block: "nearest" });
  }

  function closePicker(details) {
    details.open = false;
    var summary = $("summary", details);
    if (summary) summary.focus();
  }

  function send(form) {
    if (!form || busy) return;
    if (!form.checkValidity()) { form.reportValidity(); return; }
    busy = true;
    form.requestSubmit();
  }

  function choose(choice) {
    if (choice.type !== "radio") { choice.click(); return; }
    choice.checked = true;
    var textId = choice.getAttribute("data-needs-text");
    var text = textId && document.getElementById(textId);
    if (text && !text.value.trim()) { text.focus(); return; } // "other" needs a word first
    send(choice.form);
  }

  function pick(details, number) {
    var choice = $('[data-choice="' + number + '"]', details);
    if (choice) choose(choice);
  }

  // Enter in an open picker sends the highlighted choice; on its own buttons and links Enter
  // does what it always does.
  function sendHighlighted(details, target) {
    if (target.matches && target.matches("input[type='radio'][data-choice]") && details.contains(target)) {
      choose(target);
      return true;
    }
    if (isControl(target)) return false;
    var checked = $("[data-choice]:checked", details);
    if (!checked) return false;
    choose(checked);
    return true;
  }

  // -- keys ------------------------------------------------------------------------------------

  function activate(el) {
    var action = el.getAttribute("data-key-action") || (el.tagName === "DETAILS" ? "toggle" : "click");
    if (action === "edit") {
      el.focus();
      if (typeof el.setSelectionRange === "function") el.setSelectionRange(el.value.length, el.value.length);
    } else if (action === "picker") {
      openPicker(el);
    } else if (action === "toggle") {
      el.open = !el.open;
      el.scrollIntoView({ block: "nearest" });
    } else if (action === "help") {
      toggleHelp();
    } else {
      el.click();
    }
  }

  function onTypingKey(ev, field) {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey) && field.hasAttribute("data-submit-on-ctrl-enter")) {
      ev.preventDefault();
      send(field.form);
    } else if (ev.key === "Escape") {
      ev.preventDefault();
      var picker = field.closest("details[data-key-action='picker']");
      if (picker) { closePicker(picker); return; }
      if (field.hasAttribute("data-submit-on-ctrl-enter")) field.value = field.defaultValue; // cancel the edit
      field.blur();
      focusHeading();
    }
  }

  function onPickerKey(ev, picker) {
    if (ev.key === "Escape") { ev.preventDefault(); closePicker(picker); return true; }
    if (ev.key === "Enter" && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
      if (sendHighlighted(picker, ev.target)) ev.preventDefault();
      return true;
    }
    if (/^[1-9]$/.test(ev.key) && shortcutsOn() && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
      ev.preventDefault();
      pick(picker, ev.key);
      return true;
    }
    return false;
  }

  function onKey(ev) {
    if (ev.defaultPrevented || !keybar()) return;
    if (isTyping(ev.target)) { onTypingKey(ev, ev.target); return; }
    var help = helpDialog();
    if (help && help.open) { // modal: only ? (and the dialog's own Esc) act
      if (ev.key === "?") { ev.preventDefault(); help.close(); }
      return;
    }
    var picker = openPickerEl();
    if (picker && onPickerKey(ev, picker)) return;
    if (ev.ctrlKey || ev.metaKey || ev.altKey || !shortcutsOn() || ev.key.length !== 1) return;
    if (ev.key === "j" || ev.key === "k") { ev.preventDefault(); moveStep(ev.key === "j" ? 1 : -1); return; }
    if (ev.repeat || busy) return; // a held key or a second press never decides twice
    if (ev.key === "o") { ev.preventDefault(); toggleObservation(); return; }
    var el = $('[data-key="' + CSS.escape(ev.key) + '"]');
    if (!el || el.disabled) return;
    ev.preventDefault();
    activate(el);
  }

  // -- after each swap and on load -------------------------------------------------------------

  function refreshHints() {
    $$("[data-key-hint]").forEach(function (hint) {
      var key = hint.getAttribute("data-key-hint");
      hint.hidden = !$('[data-key="' + CSS.escape(key) + '"]:not([data-keybar] *)');
    });
  }

  function fitKeybar() {
    var bar = keybar();
    if (!bar) return;
    var fixed = window.getComputedStyle(bar).position === "fixed";
    document.body.style.setProperty("--keybar-height", fixed ? bar.offsetHeight + "px" : "0px");
  }

  // htmx fires afterSwap on the new content itself: here, the next item's section.
  function onSwap(ev) {
    var review = ev.target;
    if (!review || !review.matches || !review.matches("[data-review]")) return;
    busy = false;
    currentStep = -1;
    refreshHints();
    window.scrollTo(0, 0);
    focusHeading();
    announce(review.getAttribute("data-announce"));
  }

  document.addEventListener("keydown", onKey);
  document.addEventListener("click", function (ev) {
    var help = ev.target.closest && ev.target.closest("[data-key-action='help']");
    if (help) { ev.preventDefault(); toggleHelp(); }
  });
  document.addEventListener("submit", function (ev) {
    if (ev.target.matches("[data-shortcuts-form]")) { ev.preventDefault(); toggleShortcuts(ev.target); }
  });
  document.addEventListener("reset", function (ev) {
    if (ev.target.matches("[data-edit-form]")) window.setTimeout(focusHeading, 0);
  });
  document.addEventListener("htmx:afterSwap", onSwap);
  document.addEventListener("htmx:beforeRequest", function (ev) {
    if (ev.target.closest && ev.target.closest("[data-review]")) busy = true;
  });
  document.addEventListener("htmx:afterRequest", function () { busy = false; });
  document.addEventListener("DOMContentLoaded", function () {
    var bar = keybar();
    if (!bar) return;
    showShortcuts(bar.getAttribute("data-shortcuts") !== "off");
    refreshHints();
    fitKeybar();
    window.addEventListener("resize", fitKeybar);
  });
})();
