// A form generated from a JSON Schema, for answering an approval gate: strings, numbers,
// integers, booleans, enums, nested objects and arrays of scalars get their own labelled fields
// (defaults filled in, required ones marked, descriptions as hints); anything else is a JSON
// text area. The server checks the answer: its problem's `errors` ({path, message}) are shown
// next to the fields they name, so a person sees what to fix where.
// An optional field the person never touched is left out of the answer (an unticked box is not
// `false`, an optional object with every field empty is not `{}`), so that the answer says only
// what the person said and an optional object's own required fields do not fail it.

import { element } from "./format.js";

const SCALARS = new Set(["string", "number", "integer", "boolean"]);
let counter = 0;

function typeOf(schema) {
  if (Array.isArray(schema.type)) return schema.type.find((type) => type !== "null");
  if (schema.type) return schema.type;
  if (schema.properties) return "object";
  return undefined;
}

function isArrayOfScalars(schema) {
  return typeOf(schema) === "array" && schema.items && SCALARS.has(typeOf(schema.items)) && !schema.items.enum;
}

function hasProperties(schema) {
  return typeOf(schema) === "object" && schema.properties && Object.keys(schema.properties).length > 0;
}

class Field {
  constructor(path, schema, required) {
    this.path = path; // the answer's path of this value: "$.input.name"
    this.schema = schema;
    this.required = required;
    this.id = `field-${++counter}`;
    this.message = element("p", { className: "field-error", id: `${this.id}-error`, hidden: true });
    this.touched = false; // set by the first input or change in this field
  }

  /** Remember that the person changed this field's control. */
  watch(control) {
    const touch = () => {
      this.touched = true;
    };
    control.addEventListener("input", touch);
    control.addEventListener("change", touch);
    return control;
  }

  label(name) {
    return element("label", { for: this.id }, name, this.required ? element("span", { className: "required" }, " (required)") : null);
  }

  hint() {
    if (!this.schema.description) return null;
    return element("small", { className: "hint", id: `${this.id}-hint` }, this.schema.description);
  }

  describe(control) {
    this.watch(control);
    const ids = [this.schema.description ? `${this.id}-hint` : null, `${this.id}-error`].filter(Boolean);
    control.setAttribute("aria-describedby", ids.join(" "));
    if (this.required) control.setAttribute("aria-required", "true");
    return control;
  }

  showError(text) {
    this.message.textContent = text;
    this.message.hidden = !text;
    this.control?.setAttribute("aria-invalid", text ? "true" : "false");
  }
}

class ScalarField extends Field {
  build(name) {
    const { schema } = this;
    const type = typeOf(schema);
    const initial = schema.default;
    if (schema.enum) {
      const options = schema.enum.map((value) =>
        element("option", { value: JSON.stringify(value), selected: initial !== undefined && JSON.stringify(initial) === JSON.stringify(value) }, String(value)),
      );
      const blank = element("option", { value: "", selected: initial === undefined }, this.required ? "Choose…" : "(none)");
      this.control = element("select", { id: this.id }, blank, ...options);
    } else if (type === "boolean") {
      this.control = element("input", { id: this.id, type: "checkbox", checked: initial === true });
      return element("div", { className: "field field-check" }, this.describe(this.control), this.label(name), this.hint(), this.message);
    } else if (type === "number" || type === "integer") {
      this.control = element("input", { id: this.id, type: "number", step: type === "integer" ? "1" : "any", value: initial });
    } else if (isArrayOfScalars(schema)) {
      const text = Array.isArray(initial) ? initial.join("\n") : "";
      this.control = element("textarea", { id: this.id, rows: 3, "aria-label": `${name}, one value per line` });
      this.control.value = text;
    } else {
      const long = (schema.maxLength || 0) > 200 || schema.format === "textarea";
      this.control = element(long ? "textarea" : "input", { id: this.id, type: long ? undefined : "text", value: long ? undefined : initial });
      if (long && initial !== undefined) this.control.value = String(initial);
    }
    return element("div", { className: "field" }, this.label(name), this.hint(), this.describe(this.control), this.message);
  }

  read() {
    const { control, schema } = this;
    const type = typeOf(schema);
    if (schema.enum) return control.value === "" ? undefined : JSON.parse(control.value);
    if (type === "boolean") {
      const said = this.required || this.touched || schema.default !== undefined;
      return said ? control.checked : undefined;
    }
    if (isArrayOfScalars(schema)) {
      const lines = control.value.split("\n").map((line) => line.trim()).filter(Boolean);
      if (!lines.length && !this.required) return undefined;
      const itemType = typeOf(schema.items);
      return lines.map((line) => scalarOf(line, itemType, this));
    }
    if ((type === "number" || type === "integer") && control.validity?.badInput) {
      throw new FieldError(this, "not a finite number");
    }
    if (control.value === "") return undefined;
    return scalarOf(control.value, type, this);
  }
}

function scalarOf(text, type, field) {
  if (type === "number" || type === "integer") {
    const number = Number(text);
    if (Number.isNaN(number)) throw new FieldError(field, `${text} is not a number`);
    if (!Number.isFinite(number)) throw new FieldError(field, `${text} is not a finite number`);
    return number;
  }
  if (type === "boolean") return text === "true";
  return text;
}

class JsonField extends Field {
  build(name) {
    this.control = element("textarea", { id: this.id, rows: 4, className: "mono", spellcheck: "false" });
    if (this.schema.default !== undefined) this.control.value = JSON.stringify(this.schema.default, null, 2);
    const hint = element("small", { className: "hint" }, "JSON");
    return element("div", { className: "field" }, this.label(name), hint, this.hint(), this.describe(this.control), this.message);
  }

  read() {
    if (this.control.value.trim() === "") return undefined;
    try {
      return JSON.parse(this.control.value);
    } catch (error) {
      throw new FieldError(this, `not valid JSON: ${error.message}`);
    }
  }
}

class ObjectField extends Field {
  build(name) {
    const required = new Set(this.schema.required || []);
    this.children = Object.entries(this.schema.properties).map(([key, schema]) => [key, fieldFor(`${this.path}.${key}`, schema, required.has(key))]);
    const built = this.children.map(([key, field]) => field.build(field.schema.title || key));
    const marker = this.required ? element("span", { className: "required" }, " (required)") : null;
    const legend = name === null ? null : element("legend", {}, name, marker);
    return element("fieldset", { className: "field-group" }, legend, this.hint(), this.message, ...built);
  }

  read() {
    const value = {};
    for (const [key, field] of this.children) {
      const child = field.read();
      if (child !== undefined) value[key] = child;
    }
    if (!this.required && Object.keys(value).length === 0) return undefined;
    return value;
  }

  fields() {
    return [this, ...this.children.flatMap(([, field]) => (field.fields ? field.fields() : [field]))];
  }
}

function fieldFor(path, schema, required) {
  if (hasProperties(schema)) return new ObjectField(path, schema, required);
  if (schema.enum || SCALARS.has(typeOf(schema)) || isArrayOfScalars(schema)) return new ScalarField(path, schema, required);
  return new JsonField(path, schema, required);
}

/** A value a field cannot read (not a number, not JSON): shown next to that field. */
export class FieldError extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

/** A form for `schema` whose answer lives at `path`: {element, read(), showErrors(errors)}. */
export function schemaForm(schema, path = "$.input") {
  const root = fieldFor(path, schema && typeof schema === "object" ? schema : {}, false);
  const built = root.build(null);
  const general = element("ul", { className: "field-error form-errors", hidden: true });
  const fields = () => (root.fields ? root.fields() : [root]);
  return {
    element: element("div", { className: "schema-form" }, built, general),
    /** The answer as the form holds it; throws FieldError naming the field it cannot read. */
    read() {
      const value = root.read();
      return value === undefined ? {} : value;
    },
    /** Show each {path, message} next to its field; the rest in a list under the form. */
    showErrors(errors) {
      const all = fields();
      for (const field of all) field.showError("");
      general.replaceChildren();
      for (const { path: where, message } of errors) {
        const missing = /'([^']+)' is a required property/.exec(message || "");
        const target = all.find((field) => field.path === (missing ? `${where}.${missing[1]}` : where));
        if (target && target !== root) target.showError(message);
        else general.append(element("li", {}, `${where}: ${message}`));
      }
      general.hidden = !general.childElementCount;
      const first = all.find((field) => field.control && field.control.getAttribute("aria-invalid") === "true");
      first?.control.focus();
    },
  };
}
