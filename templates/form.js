// Progressive enhancement of the offload_spawner form. Without this script
// the form still posts valid data (the server checks everything); with it:
// fields of unselected profiles are hidden, bounds follow the chosen target
// (limits differ per target), and the free-text field appears only when
// "Other..." is chosen. It reads only data the page already shows, plus the
// hub's availability endpoint (only the targets this user may use), polled
// every few seconds to update availability and disable what cannot start now.
(function () {
  "use strict";
  var form = document.getElementById("offload-spawner-form");
  if (!form) { return; }
  var GiB = 1073741824;
  var OTHER = "__other__";

  function byName(box, key) {
    return box.querySelector('[name="profile-option-' + box.dataset.profile + "--" + key + '"]');
  }

  function pick(select, allowed, preferred) {
    // Disable options the target does not allow; keep the choice if allowed.
    var options = Array.prototype.slice.call(select.options);
    options.forEach(function (o) { o.disabled = !allowed(o); });
    var current = select.options[select.selectedIndex];
    if (current && !current.disabled) { return; }
    var fallback = options.filter(function (o) { return !o.disabled && preferred(o); })[0] ||
                   options.filter(function (o) { return !o.disabled; })[0];
    if (fallback) { fallback.selected = true; }
  }

  function bound(input, min, max, def) {
    input.min = min; input.max = max;
    var v = parseFloat(input.value);
    if (isNaN(v) || v < min || v > max) { input.value = def; }
  }

  function known(t) {
    return t.availability && t.availability.status !== "unknown" ? t.availability : null;
  }

  function label(o, why) {
    // The plain text, without the "(down)" / "(unavailable: ...)" the server may have added.
    if (o.dataset.label === undefined) { o.dataset.label = o.textContent.replace(/ \((down|unavailable: [^)]*)\)$/, ""); }
    o.textContent = o.dataset.label + (why ? " (" + why + ")" : "");
  }

  function applyTarget(box) {
    var targets = JSON.parse(box.dataset.targets || "{}");
    var select = byName(box, "target");
    if (select) {
      pick(select, function (o) {
        var a = targets[o.value] && known(targets[o.value]);
        var down = !!a && a.status === "down";
        label(o, down ? "down" : "");
        return !down;
      }, function () { return true; });
    }
    box.querySelectorAll("[data-availability]").forEach(function (span) {
      var a = (targets[span.dataset.availability] || {}).availability;
      if (a) { span.textContent = a.summary; span.dataset.status = a.status; }
    });
    var slug = select ? select.value : "";
    var t = targets[slug];
    if (!t) { return; }
    var live = t.offload === "session" ? known(t) : null;
    var fraction = live ? (live.request_fraction || 1) : 1;
    function fits(value, free) { return !live || live.status !== "up" || free === null || value * fraction <= free + 1e-9; }
    box.querySelectorAll("[data-target]").forEach(function (li) {
      var chosen = li.dataset.target === slug;
      li.classList.toggle("offload-target-chosen", chosen);
      if (chosen) { li.setAttribute("aria-current", "true"); } else { li.removeAttribute("aria-current"); }
      var badge = li.querySelector(".offload-chosen-badge");
      if (badge) { badge.hidden = !chosen; }
    });
    // Where the user's files will be: shown for the chosen target only.
    box.querySelectorAll("[data-storage]").forEach(function (div) {
      div.hidden = div.dataset.storage !== slug;
    });
    var cores = byName(box, "cores");
    if (cores && t.cores) {
      if (cores.tagName === "SELECT") {
        pick(cores, function (o) { return t.cores.choices.indexOf(parseFloat(o.value)) >= 0 && fits(parseFloat(o.value), live && live.cores_free); },
             function (o) { return parseFloat(o.value) === t.cores.default; });
      } else {
        bound(cores, t.cores.min, t.cores.max, t.cores.default);
      }
    }
    var memory = byName(box, "memory");
    if (memory && t.memory) {
      if (memory.tagName === "SELECT") {
        pick(memory, function (o) { return t.memory.choices.indexOf(parseInt(o.dataset.bytes, 10)) >= 0 && fits(parseInt(o.dataset.bytes, 10), live && live.memory_free); },
             function (o) { return parseInt(o.dataset.bytes, 10) === t.memory.default; });
      } else {
        bound(memory, t.memory.min / GiB, t.memory.max / GiB, t.memory.default / GiB);
      }
    }
    var accelerator = byName(box, "accelerator");
    var count = byName(box, "accelerator_count");
    if (accelerator) {
      pick(accelerator, function (o) {
        if (o.value === "none") { return true; }
        var i = o.value.lastIndexOf(":");
        var offer = t.accelerators[o.value.slice(0, i)];
        var offered = !!offer && offer.models.indexOf(o.value.slice(i + 1)) >= 0;
        var a = known(t);
        var use = a && a.accelerators[o.value];
        var why = "";
        if (offered && a && a.status === "down") { why = "target down"; }
        else if (offered && use && use.available < 1) { why = use.total ? "all " + use.total + " in use" : "none here"; }
        label(o, why);
        return offered && !why;
      }, function (o) { return o.value === "none"; });
      var chosen = accelerator.value;
      var offer = chosen === "none" ? null : t.accelerators[chosen.slice(0, chosen.lastIndexOf(":"))];
      if (count) {
        count.disabled = !offer;
        var a = known(t);
        var use = offer && a && a.accelerators[chosen];
        if (offer) { bound(count, 1, use ? Math.max(1, Math.min(offer.max, use.available)) : offer.max, 1); }
      }
    }
  }

  function applyOther(box) {
    box.querySelectorAll(".offload-option").forEach(function (div) {
      var select = div.querySelector("select");
      var text = div.querySelector('input[type="text"]');
      if (!select || !text) { return; }
      var other = select.value === OTHER;
      div.querySelector(".offload-unlisted").hidden = !other;
      text.hidden = !other;
      text.required = other;
    });
  }

  function applyProfile() {
    form.querySelectorAll(".offload-profile").forEach(function (box) {
      var radio = box.querySelector('input[name="profile"]');
      var body = box.querySelector(".offload-fields");
      body.hidden = !radio.checked;
      // Hidden fields must not block submission through browser validation.
      body.querySelectorAll("input, select").forEach(function (el) { el.disabled = !radio.checked; });
      if (radio.checked) { applyTarget(box); applyOther(box); }
    });
  }

  form.addEventListener("change", function (event) {
    var box = event.target.closest(".offload-profile");
    if (event.target.name === "profile") { applyProfile(); return; }
    if (!box) { return; }
    applyTarget(box);
    applyOther(box);
  });
  applyProfile();

  // Live availability: the hub's endpoint answers only for this user's targets.
  var base = (window.jhdata && window.jhdata.base_url) || "/hub/";
  var url = base.replace(/\/?$/, "/") + "offload/availability";
  function refresh() {
    if (!window.fetch) { return; }
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data || !data.targets) { return; }
        form.querySelectorAll(".offload-profile").forEach(function (box) {
          var targets = JSON.parse(box.dataset.targets || "{}");
          Object.keys(targets).forEach(function (slug) {
            if (data.targets[slug]) { targets[slug].availability = data.targets[slug]; }
          });
          box.dataset.targets = JSON.stringify(targets);
        });
        applyProfile();
      })
      .catch(function () { /* keep what is shown; try again next time */ });
  }
  var every = parseInt(form.dataset.refreshMs || "3000", 10);
  if (every > 0) { setInterval(refresh, every); }
})();
