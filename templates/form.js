// Progressive enhancement of the offload_spawner form. Without this script
// the form still posts valid data (the server checks everything); with it:
// fields of unselected profiles are hidden, bounds follow the chosen target
// (limits differ per target), and the free-text field appears only when
// "Other..." is chosen. It reads only data the page already shows.
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

  function applyTarget(box) {
    var targets = JSON.parse(box.dataset.targets || "{}");
    var select = byName(box, "target");
    var slug = select ? select.value : "";
    var t = targets[slug];
    if (!t) { return; }
    box.querySelectorAll("[data-target]").forEach(function (li) {
      li.classList.toggle("fw-semibold", li.dataset.target === slug);
    });
    var cores = byName(box, "cores");
    if (cores && t.cores) {
      if (cores.tagName === "SELECT") {
        pick(cores, function (o) { return t.cores.choices.indexOf(parseFloat(o.value)) >= 0; },
             function (o) { return parseFloat(o.value) === t.cores.default; });
      } else {
        bound(cores, t.cores.min, t.cores.max, t.cores.default);
      }
    }
    var memory = byName(box, "memory");
    if (memory && t.memory) {
      if (memory.tagName === "SELECT") {
        pick(memory, function (o) { return t.memory.choices.indexOf(parseInt(o.dataset.bytes, 10)) >= 0; },
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
        return !!offer && offer.models.indexOf(o.value.slice(i + 1)) >= 0;
      }, function (o) { return o.value === "none"; });
      var chosen = accelerator.value;
      var offer = chosen === "none" ? null : t.accelerators[chosen.slice(0, chosen.lastIndexOf(":"))];
      if (count) {
        count.disabled = !offer;
        if (offer) { bound(count, 1, offer.max, 1); }
      }
    }
  }

  function applyOther(box) {
    box.querySelectorAll(".offload-option").forEach(function (div) {
      var select = div.querySelector("select");
      var text = div.querySelector('input[type="text"]');
      if (!select || !text) { return; }
      var other = select.value === OTHER;
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
})();
