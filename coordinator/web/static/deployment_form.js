// The "New deployment" page (#/deployments/new): a form over the seed's create body
// (docs/deployments.md): name, type and payload, targets, staggered rollout with its failure
// thresholds, retries, maintenance windows. It posts to POST /v2/deployments as any client does;
// the API validates, and its refusal is shown as it words it. Created, the deployment opens on its
// own page, where Initialize shows the preview.
//
// Device data (hostnames in the target list) goes through h() like everywhere else: text nodes.

const PAYLOAD_HINT = {
  software: '{"artifactId": "…", "packageName": "…"}',
  patch: '{"packages": [{"name": "openssl", "version": "latest"}]}',
  policy: '{"name": "…", "version": 1, "document": {}}',
};

export async function newDeploymentPage(ui) {
  const { h, api, enc, me, showError, hideBanner } = ui;
  const field = (label, input, hint) => h("label", { class: "field" }, h("span", {}, label), input, hint ? h("small", { class: "muted" }, hint) : null);
  const text = (id, attrs) => h("input", { type: "text", id, name: id, ...attrs });
  const number = (id, attrs) => h("input", { type: "number", id, name: id, step: "any", min: "0", ...attrs });
  const select = (id, options) => h("select", { id, name: id }, options.map(([value, label]) => h("option", { value }, label)));

  const client = select("nd-client", me.clients.map((c) => [c.id, c.name]));
  const name = text("nd-name", { required: true, maxlength: 300, placeholder: "Monthly cleanup" });
  const type = select("nd-type", [["script", "script"], ["software", "software"], ["patch", "patch"], ["policy", "policy"]]);
  const scriptId = text("nd-script", { list: "nd-scripts", placeholder: "script id (convoy scripts list)" });
  const scripts = h("datalist", { id: "nd-scripts" });
  const parameters = h("textarea", { id: "nd-parameters", rows: 2 }, "{}");
  const payload = h("textarea", { id: "nd-payload", rows: 3 });
  const scriptBox = h("div", { class: "group" }, field("script", [scriptId, scripts]), field("parameters (JSON)", parameters));
  const payloadBox = h("div", { class: "group" }, field("payload (JSON)", payload));

  const targetType = select("nd-target-type", [["devices", "devices"], ["groups", "groups"], ["filter", "filter"], ["all", "all devices"]]);
  const deviceList = h("div", { id: "nd-devices", class: "checklist" });
  const groupIds = h("textarea", { id: "nd-groups", rows: 2, placeholder: "group ids, one a line" });
  const filter = text("nd-filter", { placeholder: 'os == "linux" and "web" in tags' });
  const targetBoxes = {
    devices: h("div", { class: "group" }, field("devices", deviceList)),
    groups: h("div", { class: "group" }, field("groups", groupIds)),
    filter: h("div", { class: "group" }, field("filter", filter, "the target filter language (docs/deployments-rules.md)")),
    all: h("div", { class: "group muted" }, "every device of the client, resolved at initialize"),
  };

  const rolloutType = select("nd-rollout", [["immediate", "immediate (one batch)"], ["staggered", "staggered (batches)"]]);
  const batchSize = text("nd-batch-size", { placeholder: "10 or 10%" });
  const batchDelay = number("nd-batch-delay", { placeholder: "0" });
  const failCount = number("nd-fail-count", { step: "1" });
  const failPercent = number("nd-fail-percent", { max: "100" });
  const staggeredBox = h("div", { class: "group" },
    field("batch size", batchSize, "devices, or a percent of the resolved count"),
    field("batch delay (minutes)", batchDelay),
    field("pause after N failures", failCount),
    field("pause over this % failed", failPercent, "of finished devices"));
  const windows = h("input", { type: "checkbox", id: "nd-windows" });
  const maxRetries = number("nd-retries", { step: "1", max: "10", placeholder: "0" });
  const backoff = text("nd-backoff", { placeholder: "5, 15, 60" });
  const installTimeout = number("nd-install-timeout", { placeholder: "default" });

  function sync() {
    scriptBox.hidden = type.value !== "script";
    payloadBox.hidden = type.value === "script";
    payload.placeholder = PAYLOAD_HINT[type.value] || "";
    for (const [key, box] of Object.entries(targetBoxes)) box.hidden = key !== targetType.value;
    staggeredBox.hidden = rolloutType.value !== "staggered";
  }

  async function loadClientData() {
    deviceList.replaceChildren(h("span", { class: "muted" }, "loading devices…"));
    const devices = await api("GET", `/clients/${enc(client.value)}/devices?limit=1000`);
    deviceList.replaceChildren(...devices.data.map((d) => h("label", { class: "check" },
      h("input", { type: "checkbox", value: d.id, "data-device": d.id }),
      h("span", { class: "hostname" }, d.facts.hostname || d.id), " ",
      h("span", { class: "muted" }, `${d.facts.os} · ${d.online ? "online" : "offline"}${d.tags.length ? " · " + d.tags.join(", ") : ""}`))));
    if (!devices.data.length) deviceList.replaceChildren(h("span", { class: "muted" }, "no devices enrolled in this client"));
    // The script picker is a convenience: a coordinator without GET /v2/scripts still takes an id.
    try {
      const list = await api("GET", `/scripts?clientId=${enc(client.value)}`);
      scripts.replaceChildren(...(list.data || []).map((s) => h("option", { value: s.id }, s.name)));
    } catch {
      scripts.replaceChildren();
    }
  }

  // A field left empty is left out of the body: the API's default applies.
  const num = (input) => (input.value.trim() === "" ? undefined : Number(input.value));
  const lines = (area) => area.value.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
  function json(area, what) {
    try {
      return JSON.parse(area.value.trim() || "{}");
    } catch (e) {
      throw new Error(`${what} is not valid JSON: ${e.message}`);
    }
  }

  function body() {
    const out = { name: name.value, type: type.value, targetType: targetType.value, clientId: client.value };
    out.payload = type.value === "script" ? { scriptId: scriptId.value.trim(), parameters: json(parameters, "parameters") } : json(payload, "payload");
    const t = targetType.value;
    out.targetConfig = { type: t };
    if (t === "devices") out.targetConfig.deviceIds = [...deviceList.querySelectorAll("input:checked")].map((c) => c.value);
    if (t === "groups") out.targetConfig.groupIds = lines(groupIds);
    if (t === "filter") out.targetConfig.filter = filter.value;
    const rollout = { type: rolloutType.value, respectMaintenanceWindows: windows.checked };
    if (rolloutType.value === "staggered") {
      const size = batchSize.value.trim();
      rollout.staggered = { batchSize: /^\d+$/.test(size) ? Number(size) : size, batchDelayMinutes: num(batchDelay),
        pauseOnFailureCount: num(failCount), pauseOnFailurePercent: num(failPercent) };
    }
    const retries = num(maxRetries);
    if (retries !== undefined || backoff.value.trim()) {
      rollout.retryConfig = { maxRetries: retries };
      if (backoff.value.trim()) rollout.retryConfig.backoffMinutes = lines(backoff).map(Number);
    }
    if (num(installTimeout) !== undefined) rollout.installTimeoutMinutes = num(installTimeout);
    out.rolloutConfig = rollout;
    return out;
  }

  const submit = h("button", { class: "primary", type: "submit" }, "Create draft");
  const form = h("form", { id: "new-deployment", class: "dform" },
    h("fieldset", {}, h("legend", {}, "What"),
      me.clients.length > 1 ? field("client", client) : null,
      field("name", name), field("type", type), scriptBox, payloadBox),
    h("fieldset", {}, h("legend", {}, "Targets"), field("target", targetType), ...Object.values(targetBoxes)),
    h("fieldset", {}, h("legend", {}, "Rollout"), field("strategy", rolloutType), staggeredBox,
      h("label", { class: "check" }, windows, " respect the devices' maintenance windows (skip devices outside them)")),
    h("fieldset", {}, h("legend", {}, "Retries and timeout"),
      field("retries per device", maxRetries, "0–10"), field("backoff (minutes)", backoff, "before retry 1, 2, …; the last repeats"),
      field("install timeout (minutes)", installTimeout)),
    h("div", { class: "row" }, submit, h("span", { class: "muted" }, "a draft: nothing runs until you initialize and start it")));

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    hideBanner();
    submit.disabled = true;
    try {
      const dep = await api("POST", "/deployments", body());
      location.hash = `#/deployments/${enc(dep.id)}`;
    } catch (err) {
      showError(err);
    } finally {
      submit.disabled = false;
    }
  });
  for (const el of [type, targetType, rolloutType]) el.addEventListener("change", sync);
  client.addEventListener("change", () => loadClientData().catch(showError));
  sync();
  ui.main().replaceChildren(h("p", {}, h("a", { href: "#/deployments" }, "← deployments")), h("h1", {}, "New deployment"), form);
  await loadClientData();
}
