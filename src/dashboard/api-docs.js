// The API reference page: fetches this node's OpenAPI document and renders every operation,
// grouped by tag, with its method, path, summary, authentication, parameters, request body and
// responses. Everything it shows comes from the document, so the page cannot disagree with it.

import { $, el } from "/assets/dom.js";

const METHODS = ["get", "post", "put", "patch", "delete"];
// How deep nested schemas are expanded; deeper ones are named only (and cycles stop here).
const MAX_DEPTH = 6;

main();

async function main() {
  let doc;
  try {
    const response = await fetch("/api/openapi.json", { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    doc = await response.json();
  } catch (error) {
    $("status").textContent = `Cannot load /api/openapi.json: ${error.message}`;
    return;
  }
  render(doc);
}

function render(doc) {
  const info = doc.info || {};
  $("title").textContent = `${info.title || "API"} ${info.version || ""} — API reference`.trim();
  document.title = $("title").textContent;
  $("status").textContent = `OpenAPI ${doc.openapi}`;
  $("intro").append(el("p", { text: info.description || "" }), securityIntro(doc));

  const tags = (doc.tags || []).map((tag) => tag.name);
  const byTag = new Map(tags.map((name) => [name, []]));
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS) {
      const operation = item[method];
      if (!operation) continue;
      const tag = (operation.tags && operation.tags[0]) || "other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push({ path, method, operation });
    }
  }

  const operations = $("operations");
  const toc = $("toc");
  for (const [tag, list] of byTag) {
    if (list.length === 0) continue;
    const description = (doc.tags || []).find((t) => t.name === tag)?.description;
    const section = el("section", { class: "tag", id: `tag-${slug(tag)}` },
      el("h2", { text: tag }),
      description ? el("p", { text: description }) : null);
    const items = el("ul");
    for (const entry of list) {
      section.append(renderOperation(doc, entry));
      items.append(el("li", {},
        el("a", { href: `#${anchor(entry)}` },
          el("span", { class: `method method-${entry.method}`, text: entry.method.toUpperCase() }),
          " ", entry.operation.summary || entry.path)));
    }
    operations.append(section);
    toc.append(el("h2", {}, el("a", { href: `#tag-${slug(tag)}`, text: tag })), items);
  }
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
}

function securityIntro(doc) {
  const schemes = doc.components?.securitySchemes || {};
  const list = el("ul");
  for (const [name, scheme] of Object.entries(schemes)) {
    list.append(el("li", {}, el("code", { text: name }), `: ${describeScheme(scheme)}`,
      scheme.description ? ` — ${scheme.description}` : ""));
  }
  return el("div", {}, el("h2", { text: "Authentication" }), list);
}

function describeScheme(scheme) {
  if (scheme.type === "http") return `Authorization: ${cap(scheme.scheme)} <${scheme.bearerFormat || "token"}>`;
  if (scheme.type === "apiKey") return scheme.in === "query" ? `query parameter ${scheme.name}` : `header ${scheme.name}`;
  return scheme.type;
}

function renderOperation(doc, { path, method, operation }) {
  const card = el("article", { class: "operation", id: anchor({ path, method, operation }) },
    el("h3", {},
      el("span", { class: `method method-${method}`, text: method.toUpperCase() }),
      el("span", { class: "path", text: path }),
      operation.summary ? el("span", { class: "summary", text: operation.summary }) : null));
  if (operation.description) card.append(el("p", { text: operation.description }));

  const security = operation.security || doc.security || [];
  const ways = security.map((requirement) => Object.keys(requirement).join(" + ")).filter(Boolean);
  card.append(el("p", { class: "auth" }, el("strong", { text: "Authentication: " }),
    ways.length ? ways.join(" or ") : "none"));

  const parameters = operation.parameters || [];
  if (parameters.length) {
    const rows = parameters.map((parameter) => el("tr", {},
      el("td", {}, el("code", { text: parameter.name }),
        parameter.required ? el("span", { class: "required", text: " required" }) : null),
      el("td", { text: parameter.in }),
      el("td", {}, el("span", { class: "type", text: typeName(doc, parameter.schema) })),
      el("td", { text: parameter.description || "" })));
    card.append(el("h4", { text: "Parameters" }),
      el("table", { class: "params" },
        el("thead", {}, el("tr", {}, ...["Name", "In", "Type", "Description"].map((h) => el("th", { text: h })))),
        el("tbody", {}, ...rows)));
  }

  const body = operation.requestBody;
  if (body) {
    card.append(el("h4", { text: `Request body${body.required ? "" : " (optional)"}` }));
    for (const [type, media] of Object.entries(body.content || {})) {
      card.append(el("p", {}, el("code", { text: type })), schemaView(doc, media.schema, 0));
    }
  }

  const responses = el("dl", { class: "responses" });
  for (const [status, response] of Object.entries(operation.responses || {})) {
    responses.append(el("dt", { text: `${status}` }), el("dd", { text: response.description || "" }));
    for (const [type, media] of Object.entries(response.content || {})) {
      responses.append(el("dd", {}, el("code", { text: type }), schemaView(doc, media.schema, 0)));
    }
  }
  card.append(el("h4", { text: "Responses" }), responses);
  return card;
}

/** The schema `$ref` points to, and its name. */
function resolve(doc, schema) {
  if (schema && schema.$ref) {
    const name = schema.$ref.split("/").pop();
    return { name, schema: doc.components?.schemas?.[name] || {} };
  }
  return { name: null, schema: schema || {} };
}

/** A one-line type: `string`, `integer`, `Message`, `array of WebhookEndpoint`, `a | b`. */
function typeName(doc, raw) {
  if (!raw) return "any";
  const { name, schema } = resolve(doc, raw);
  if (name) return name;
  const variants = schema.oneOf || schema.anyOf;
  if (variants) return variants.map((v) => typeName(doc, v)).join(" | ");
  if (schema.allOf) return schema.allOf.map((v) => typeName(doc, v)).join(" & ");
  let type = Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type || "any";
  if (schema.type === "array" || (Array.isArray(schema.type) && schema.type.includes("array"))) {
    type = type.replace("array", `array of ${typeName(doc, schema.items)}`);
  }
  if (schema.format) type += ` (${schema.format})`;
  if (schema.enum) type += `: ${schema.enum.map((v) => JSON.stringify(v)).join(", ")}`;
  return type;
}

/** A schema as a list of its fields, nested objects expanded (down to MAX_DEPTH). */
function schemaView(doc, raw, depth) {
  if (!raw) return el("span");
  const { name, schema } = resolve(doc, raw);
  const wrap = el("div");
  if (name) wrap.append(el("span", { class: "type", text: name }));
  if (depth >= MAX_DEPTH) return wrap;
  const variants = schema.oneOf || schema.anyOf;
  if (variants) {
    const list = el("ul", { class: "schema" });
    for (const variant of variants) list.append(el("li", { text: "one of: " }, schemaView(doc, variant, depth + 1)));
    wrap.append(list);
    return wrap;
  }
  if (schema.allOf) {
    for (const part of schema.allOf) wrap.append(schemaView(doc, part, depth + 1));
    return wrap;
  }
  if (schema.type === "array" || (Array.isArray(schema.type) && schema.type.includes("array"))) {
    wrap.append(el("span", { class: "type", text: " array of" }), schemaView(doc, schema.items, depth + 1));
    return wrap;
  }
  const properties = schema.properties || {};
  if (Object.keys(properties).length === 0) {
    if (!name) wrap.append(el("span", { class: "type", text: typeName(doc, schema) }));
    return wrap;
  }
  const required = new Set(schema.required || []);
  const list = el("ul", { class: "schema" });
  for (const [field, property] of Object.entries(properties)) {
    const item = el("li", {}, el("code", { text: field }), " ",
      el("span", { class: "type", text: typeName(doc, property) }),
      required.has(field) ? el("span", { class: "required", text: " required" }) : null,
      property.description ? ` — ${property.description}` : "");
    const inner = resolve(doc, property).schema;
    const expandable = inner.properties || inner.oneOf || inner.allOf ||
      (inner.items && resolve(doc, inner.items).schema.properties);
    if (expandable) item.append(schemaView(doc, property, depth + 1));
    list.append(item);
  }
  wrap.append(list);
  return wrap;
}

function anchor({ method, operation, path }) {
  return operation.operationId || `${method}-${slug(path)}`;
}

function slug(text) {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
}

function cap(text) {
  return text ? text[0].toUpperCase() + text.slice(1) : "";
}
