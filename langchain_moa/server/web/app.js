// The page of `moa serve`: a chat where each proposal writes in a panel of its own and the answer
// forms beneath them. It reads the run's events from POST /v1/moa/events (documented in
// langchain_moa/server/moa_api.py); the server keeps the conversation as a thread.
"use strict";

const KEY = "moa-key"; // sessionStorage: the API key lives as long as this tab, never in a URL
const THREAD = "moa-thread"; // localStorage: the conversation shown, kept by the server
const MODEL = "moa-model";
const SETTINGS = "moa-settings";

const $ = (id) => document.getElementById(id);

// A model's text is never HTML: raw HTML in Markdown is shown as text, an image as its description
// (nothing is fetched for a model), and what marked makes is sanitised by DOMPurify before it reaches
// the page. Links open in a new tab, which gets no hold on this one.
const escapeHtml = (text) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
marked.use({
  renderer: {
    html: (token) => escapeHtml(token.text),
    image: (token) => escapeHtml(`[image: ${token.text}]`),
  },
});
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

function renderMarkdown(element, text) {
  element.innerHTML = DOMPurify.sanitize(marked.parse(text));
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  node.append(...children); // strings become text nodes: nothing here is parsed as HTML
  return node;
}

function say(text) {
  $("status").textContent = text;
}

// -- talking to the server ---------------------------------------------------------------------

let keyWanted = null; // the pending key prompt, shared by the requests that need it

function askForKey(reason) {
  if (!keyWanted) {
    keyWanted = new Promise((resolve) => {
      $("key-error").textContent = reason;
      $("key").value = "";
      $("key-dialog").showModal();
      $("key-form").onsubmit = () => {
        sessionStorage.setItem(KEY, $("key").value);
        keyWanted = null;
        resolve();
      };
    });
  }
  return keyWanted;
}

async function api(path, init = {}) {
  for (;;) {
    const headers = { ...(init.headers || {}) };
    const key = sessionStorage.getItem(KEY);
    if (key) headers.Authorization = `Bearer ${key}`;
    const response = await fetch(path, { ...init, headers });
    if (response.status !== 401) return response;
    sessionStorage.removeItem(KEY);
    await askForKey(key ? "The server refused that key." : "");
  }
}

async function errorOf(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error;
  } catch (_) {
    // not JSON: said below
  }
  return { message: `The server answered ${response.status} ${response.statusText}.`, param: null };
}

// Server-sent events from a fetch body: [kind, data] pairs.
async function* serverEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let kind = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) kind = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) yield [kind, JSON.parse(data)];
    }
  }
}

// -- one answer: a panel per proposer per layer, and the answer beneath ------------------------

const seconds = (s) => (s == null ? "" : `${Number(s).toFixed(1)} s`);
const dollars = (usd) => (usd == null ? "cost unknown" : `$${Number(usd).toFixed(usd < 0.01 ? 6 : 4)}`);
const tokens = (usage) => (usage ? `${usage.total_tokens} tokens` : "tokens unknown");

class Panel {
  constructor(container, layer, index, model) {
    this.state = el("span", { class: "state" }, "writing");
    this.meta = el("span", { class: "meta" });
    this.text = el("div", { class: "text" });
    this.problem = el("p", { class: "problem", role: "alert", hidden: "" });
    this.node = el(
      "article",
      { class: "panel", "data-state": "running", "aria-label": `Layer ${layer}, proposer ${index}: ${model}` },
      el("header", {}, el("span", { class: "model" }, `#${index} ${model}`), this.meta, this.state),
      this.text,
      this.problem,
    );
    container.append(this.node);
    this.usage = null;
    this.latency = null;
  }

  write(text) {
    this.text.append(text);
    this.text.scrollTop = this.text.scrollHeight;
  }

  finish(proposal) {
    this.usage = proposal.usage;
    this.latency = proposal.latency_s;
    if (proposal.skipped) {
      this.end("skipped", proposal.skipped);
    } else if (proposal.error) {
      this.end("failed", proposal.error);
    } else {
      this.text.textContent = proposal.content;
      this.end("done");
    }
    this.describe(null);
  }

  end(state, problem) {
    if (this.node.dataset.state !== "running" && state === "stopped") return;
    this.node.dataset.state = state;
    this.state.textContent = state;
    if (problem) {
      this.problem.textContent = problem;
      this.problem.hidden = false;
    }
  }

  describe(cost) {
    const ran = this.node.dataset.state !== "skipped";
    const parts = [ran ? tokens(this.usage) : "", cost === null ? "" : dollars(cost), seconds(this.latency)];
    this.meta.textContent = parts.filter(Boolean).join(" · ");
  }
}

class Turn {
  constructor(question) {
    $("conversation").append(el("p", { class: "question" }, question));
    this.layers = el("div", { class: "layers" });
    this.meta = el("span", { class: "meta" });
    this.state = el("span", { class: "state" }, "waiting for the proposals");
    this.notes = el("p", { class: "notes", hidden: "" });
    this.text = el("div", { class: "markdown" });
    this.totals = el("p", { class: "totals" });
    this.problem = el("p", { class: "error", role: "alert", hidden: "" });
    this.answer = el(
      "article",
      { class: "answer", "data-state": "running", "aria-label": "Answer" },
      el("header", {}, el("h3", {}, "Answer"), this.meta, this.state),
      this.notes,
      this.text,
      this.totals,
      this.problem,
    );
    this.node = el("section", { class: "turn" }, this.layers, this.answer);
    $("conversation").append(this.node);
    this.panels = new Map();
    this.layerPanels = new Map();
    this.written = "";
    this.ended = false;
    this.started = performance.now();
  }

  panel(node, layer, index, model) {
    if (!this.panels.has(node)) {
      if (!this.layerPanels.has(layer)) {
        const panels = el("div", { class: "panels" });
        this.layers.append(el("section", { class: "layer" }, el("h3", {}, `Layer ${layer} proposals`), panels));
        this.layerPanels.set(layer, panels);
      }
      this.panels.set(node, new Panel(this.layerPanels.get(layer), layer, index, model));
    }
    return this.panels.get(node);
  }

  note(text) {
    this.notes.hidden = false;
    this.notes.append(el("span", {}, text), " ");
  }

  on(kind, data) {
    switch (kind) {
      case "proposer_started":
        this.panel(data.node, data.layer, data.index, data.model);
        break;
      case "proposal_chunk":
        this.panel(data.node, data.layer, data.index, "").write(data.text);
        break;
      case "proposal":
        this.panel(data.node, data.layer, data.index, data.model).finish(data);
        break;
      case "agreed": {
        const calls = data.skipped.length === 1 ? "1 call" : `${data.skipped.length} calls`;
        this.note(
          data.chosen == null
            ? `Proposals ${data.agreeing.join(", ")} of layer ${data.layer} agreed: ${calls} skipped.`
            : `Proposals ${data.agreeing.join(", ")} agreed: the answer is proposal ${data.chosen}, the aggregator was skipped.`,
        );
        break;
      }
      case "aggregator_started":
        this.state.textContent = `${data.model} writes from ${data.references} proposals`;
        break;
      case "aggregator_round":
        if (!this.rounds) {
          this.rounds = el("span");
          this.note(this.rounds);
        }
        this.rounds.textContent = `Staircase: round ${data.round}${data.complete ? ", the proposals complete" : ""}.`;
        break;
      case "token":
        this.write(data.text);
        break;
      case "answer":
        this.finish(data);
        break;
      case "error":
        this.fail(data.message);
        break;
    }
  }

  write(text) {
    this.written += text;
    if (!this.frame) {
      this.frame = requestAnimationFrame(() => {
        this.frame = null;
        renderMarkdown(this.text, this.written);
      });
    }
  }

  finish(answer) {
    if (this.frame) cancelAnimationFrame(this.frame);
    renderMarkdown(this.text, answer.content);
    this.show(answer.moa, answer.usage, (performance.now() - this.started) / 1000);
    this.answer.dataset.state = "done";
    this.state.textContent = "done";
    this.ended = true;
  }

  // The record of a whole answer: each proposal's cost, reused proposals, an exit, the totals.
  show(moa, usage, elapsed) {
    const costs = (moa && moa.cost && moa.cost.proposers) || {};
    for (const [node, panel] of this.panels) panel.describe(node in costs ? costs[node] : null);
    if (moa && moa.reused_proposals) this.note(`${moa.reused_proposals.length} proposals reused from the previous turn.`);
    if (moa && moa.aggregator && moa.aggregator.called === false && !this.notes.textContent.includes("skipped")) {
      this.note("The proposals agreed: the aggregator was skipped.");
    }
    if (moa && moa.aggregator) this.meta.textContent = moa.aggregator.model;
    const total = usage ? dollars(usage.cost_usd) : "cost unknown";
    this.totals.textContent = `Total: ${tokens(usage)} · ${total}${elapsed == null ? "" : ` · ${seconds(elapsed)}`}`;
  }

  fail(message) {
    this.stopPanels("stopped");
    this.problem.textContent = message;
    this.problem.hidden = false;
    this.answer.dataset.state = "failed";
    this.state.textContent = "failed";
    this.ended = true;
  }

  stopPanels(state) {
    for (const panel of this.panels.values()) panel.end(state);
  }

  lost(message, retry) {
    this.fail(message);
    const again = el("button", { type: "button", class: "retry" }, "Retry");
    again.addEventListener("click", () => {
      again.disabled = true;
      retry();
    });
    this.answer.append(again);
  }

  // A whole answer kept in the thread, drawn again.
  static kept(question, answer) {
    const turn = new Turn(question);
    for (const layer of (answer.moa && answer.moa.layers) || []) {
      for (const proposal of layer) turn.on("proposal", proposal);
    }
    renderMarkdown(turn.text, answer.content);
    turn.show(answer.moa, answer.usage, null);
    turn.answer.dataset.state = "done";
    turn.state.textContent = "done";
    turn.ended = true;
    return turn;
  }
}

// -- settings: the models served and what a request may set -----------------------------------

let fields = []; // [{name, group: "request" | "moa", schema, input}]

function buildSettings(description) {
  const saved = JSON.parse(localStorage.getItem(SETTINGS) || "{}");
  const box = $("settings-fields");
  box.replaceChildren();
  fields = [];
  for (const [group, options] of [["request", description.request], ["moa", description.moa]]) {
    for (const option of options) {
      const id = `setting-${option.name}`;
      const help = el("p", { id: `${id}-doc` }, option.doc);
      const problem = el("p", { id: `${id}-problem`, class: "error", role: "alert", hidden: "" });
      let input;
      if (option.schema.enum) {
        input = el("select", { id, "aria-describedby": `${id}-doc ${id}-problem` });
        input.append(el("option", { value: "" }, `server's (${option.default ?? "unset"})`));
        for (const value of option.schema.enum) input.append(el("option", { value }, value));
      } else {
        const numeric = option.schema.type === "integer" || option.schema.type === "number";
        input = el("input", {
          id,
          type: numeric ? "number" : "text",
          step: option.schema.type === "number" ? "any" : "1",
          placeholder: `server's (${option.default ?? "unset"})`,
          "aria-describedby": `${id}-doc ${id}-problem`,
        });
      }
      input.value = saved[option.name] ?? "";
      input.addEventListener("change", saveSettings);
      box.append(el("div", { class: "setting" }, el("label", { for: id }, option.name), input, help, problem));
      fields.push({ name: option.name, group, schema: option.schema, input, problem });
    }
  }
}

function saveSettings() {
  const values = {};
  for (const field of fields) if (field.input.value !== "") values[field.name] = field.input.value;
  localStorage.setItem(SETTINGS, JSON.stringify(values));
}

// The request's own fields and its `moa` options; a value is sent as typed, for the server to judge.
function settingsBody() {
  const body = {};
  const moa = {};
  for (const field of fields) {
    const raw = field.input.value.trim();
    if (raw === "") continue;
    const numeric = field.schema.type === "integer" || field.schema.type === "number";
    const value = numeric && raw !== "" && !Number.isNaN(Number(raw)) ? Number(raw) : raw;
    if (field.group === "moa") moa[field.name] = value;
    else body[field.name] = value;
  }
  if (Object.keys(moa).length) body.moa = moa;
  return body;
}

function showFieldProblem(error) {
  for (const field of fields) {
    const named = error.param === field.name || error.param === `moa.${field.name}`;
    field.problem.hidden = !named;
    field.problem.textContent = named ? error.message : "";
    field.input.setAttribute("aria-invalid", named ? "true" : "false");
  }
}

// -- the conversation ----------------------------------------------------------------------------

function newThreadId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

let thread = localStorage.getItem(THREAD) || newThreadId();
let running = null; // the AbortController of the answer being written

function busy(on) {
  $("send").hidden = on;
  $("stop").hidden = !on;
  $("question").disabled = on;
  if (!on) $("question").focus();
}

async function send(question) {
  const turn = new Turn(question);
  const controller = new AbortController();
  running = controller;
  busy(true);
  say("The proposers are writing…");
  const body = { model: $("model").value, messages: [{ role: "user", content: question }], thread, ...settingsBody() };
  const retry = () => {
    turn.node.previousElementSibling.remove(); // the question is asked again below
    turn.node.remove();
    send(question);
  };
  try {
    const response = await api("/v1/moa/events", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    if (!response.ok) {
      const error = await errorOf(response);
      turn.fail(error.message);
      showFieldProblem(error);
      if (!$("question").value) $("question").value = question; // nothing the user wrote is lost
      say("The server refused the question.");
      return;
    }
    showFieldProblem({ param: null });
    localStorage.setItem(THREAD, thread);
    for await (const [kind, data] of serverEvents(response.body)) turn.on(kind, data);
    if (!turn.ended) turn.lost("The answer stopped before it was complete (the server closed the stream).", retry);
    say(turn.answer.dataset.state === "done" ? "" : "The answer did not come.");
  } catch (error) {
    if (controller.signal.aborted) {
      turn.fail("Stopped: every model call of this answer was cancelled.");
      say("Stopped.");
    } else {
      turn.lost(`The connection to the server was lost (${error.message}).`, retry);
      say("The connection was lost.");
    }
  } finally {
    running = null;
    busy(false);
  }
}

async function loadThread() {
  $("conversation").replaceChildren();
  const response = await api(`/v1/moa/threads/${encodeURIComponent(thread)}`);
  if (!response.ok) {
    say(`The conversation could not be loaded: ${(await errorOf(response)).message}`);
    return;
  }
  const { messages } = await response.json();
  let question = "";
  for (const message of messages) {
    if (message.role === "user") question = message.content;
    else if (message.role === "assistant") Turn.kept(question, message);
  }
}

async function start() {
  $("settings-toggle").addEventListener("click", () => {
    const open = $("settings").hidden;
    $("settings").hidden = !open;
    $("settings-toggle").setAttribute("aria-expanded", String(open));
  });
  $("new-conversation").addEventListener("click", () => {
    thread = newThreadId();
    localStorage.setItem(THREAD, thread);
    $("conversation").replaceChildren();
    say("A new conversation.");
    $("question").focus();
  });
  $("model").addEventListener("change", () => localStorage.setItem(MODEL, $("model").value));
  $("stop").addEventListener("click", () => running && running.abort());
  $("ask").addEventListener("submit", (event) => {
    event.preventDefault();
    const question = $("question").value.trim();
    if (!question || running) return;
    $("question").value = "";
    send(question);
  });
  $("question").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("ask").requestSubmit();
    }
  });
  try {
    const response = await api("/v1/moa/options");
    if (!response.ok) throw new Error((await errorOf(response)).message);
    const description = await response.json();
    const saved = localStorage.getItem(MODEL);
    for (const name of description.models) $("model").append(el("option", { value: name }, name));
    if (description.models.includes(saved)) $("model").value = saved;
    buildSettings(description);
    await loadThread();
    say("");
    document.body.dataset.ready = "true";
  } catch (error) {
    say(`The server could not be reached: ${error.message}. Reload the page to try again.`);
  }
}

start();
