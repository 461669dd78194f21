// berth's AssemblyScript helper kit for plugin ABI v1 (see plugins/ABI.md): reading the
// context and settings JSON, building the output with correct escaping, logging, and the
// exports every plugin needs. Build plugins with `asc --runtime stub` (berth runs each call in
// a fresh instance, so nothing needs freeing).
//
// A plugin re-exports `berth_abi_version` and `berth_alloc` from here and writes its own
// `berth_validate` (and, optionally, `berth_validate_settings`):
//
//   export { berth_abi_version, berth_alloc } from "../../../sdk-as/assembly/berth";
//   export function berth_validate(ctx: i32, ctxLen: i32, val: i32, valLen: i32): i64 {
//     const context = Context.parse(readUtf8(ctx, ctxLen));
//     ...
//     return respond(outcome);
//   }

@external("berth_v1", "log")
declare function hostLog(level: i32, ptr: i32, len: i32): void;

/** ABI v1's `berth_abi_version`. */
export function berth_abi_version(): i32 {
  return 1;
}

/** ABI v1's `berth_alloc`: a buffer of `len` bytes (any size, 0 included; 16-byte aligned). */
export function berth_alloc(len: i32): i32 {
  if (len < 0) return 0;
  return <i32>heap.alloc(<usize>len);
}

/** The UTF-8 text the host wrote at `ptr`. */
export function readUtf8(ptr: i32, len: i32): string {
  return String.UTF8.decodeUnsafe(<usize>ptr, <usize>len);
}

/** `text` as UTF-8 in memory, packed as ABI v1's `(ptr << 32) | len`. */
export function packUtf8(text: string): i64 {
  const bytes = String.UTF8.encode(text);
  const ptr = changetype<usize>(bytes);
  return (<i64>ptr << 32) | <i64>bytes.byteLength;
}

export const DEBUG: i32 = 0;
export const INFO: i32 = 1;
export const WARN: i32 = 2;
export const ERROR: i32 = 3;

/** One log line (`level` DEBUG..ERROR); berth keeps 512 bytes a line and 4 KiB a call. */
export function log(level: i32, message: string): void {
  const bytes = String.UTF8.encode(message);
  hostLog(level, <i32>changetype<usize>(bytes), bytes.byteLength);
}

// ---------------------------------------------------------------------------------------------
// JSON: enough to read what berth sends (the context and the settings) and to write the output.

export const NULL: i32 = 0;
export const BOOL: i32 = 1;
export const NUMBER: i32 = 2;
export const STRING: i32 = 3;
export const ARRAY: i32 = 4;
export const OBJECT: i32 = 5;

/** A parsed JSON value. Object members keep their order. */
export class Json {
  kind: i32 = NULL;
  boolean: bool = false;
  number: f64 = 0;
  text: string = "";
  items: Json[] = [];
  keys: string[] = [];

  /** The member `key` of an object, or null. */
  get(key: string): Json | null {
    if (this.kind != OBJECT) return null;
    for (let i = 0; i < this.keys.length; i++) {
      if (this.keys[i] == key) return this.items[i];
    }
    return null;
  }

  isString(): bool { return this.kind == STRING; }
  isArray(): bool { return this.kind == ARRAY; }
  isObject(): bool { return this.kind == OBJECT; }
  isNumber(): bool { return this.kind == NUMBER; }
  isNull(): bool { return this.kind == NULL; }
}

/** Why the last `parseJson` returned null. */
export let jsonError: string = "";

class Parser {
  at: i32 = 0;
  constructor(public text: string) {}

  fail(what: string): Json | null {
    jsonError = what + " at character " + this.at.toString();
    return null;
  }

  space(): void {
    while (this.at < this.text.length) {
      const c = this.text.charCodeAt(this.at);
      if (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09) break;
      this.at++;
    }
  }

  literal(word: string): bool {
    if (this.text.substr(this.at, word.length) != word) return false;
    this.at += word.length;
    return true;
  }

  value(depth: i32): Json | null {
    if (depth > 64) return this.fail("nested too deeply");
    this.space();
    if (this.at >= this.text.length) return this.fail("unexpected end");
    const c = this.text.charCodeAt(this.at);
    const out = new Json();
    if (c == 0x7b /* { */) {
      out.kind = OBJECT;
      this.at++;
      this.space();
      if (this.text.charCodeAt(this.at) == 0x7d) { this.at++; return out; }
      while (true) {
        this.space();
        if (this.text.charCodeAt(this.at) != 0x22) return this.fail("expected a key");
        const key = this.string();
        if (key == null) return null;
        this.space();
        if (this.text.charCodeAt(this.at) != 0x3a) return this.fail("expected ':'");
        this.at++;
        const member = this.value(depth + 1);
        if (member == null) return null;
        out.keys.push(key);
        out.items.push(member);
        this.space();
        const next = this.text.charCodeAt(this.at);
        this.at++;
        if (next == 0x7d) return out;
        if (next != 0x2c) return this.fail("expected ',' or '}'");
      }
    }
    if (c == 0x5b /* [ */) {
      out.kind = ARRAY;
      this.at++;
      this.space();
      if (this.text.charCodeAt(this.at) == 0x5d) { this.at++; return out; }
      while (true) {
        const item = this.value(depth + 1);
        if (item == null) return null;
        out.items.push(item);
        this.space();
        const next = this.text.charCodeAt(this.at);
        this.at++;
        if (next == 0x5d) return out;
        if (next != 0x2c) return this.fail("expected ',' or ']'");
      }
    }
    if (c == 0x22) {
      const text = this.string();
      if (text == null) return null;
      out.kind = STRING;
      out.text = text;
      return out;
    }
    if (this.literal("true")) { out.kind = BOOL; out.boolean = true; return out; }
    if (this.literal("false")) { out.kind = BOOL; return out; }
    if (this.literal("null")) return out;
    const start = this.at;
    while (this.at < this.text.length) {
      const d = this.text.charCodeAt(this.at);
      if (!((d >= 0x30 && d <= 0x39) || d == 0x2d || d == 0x2b || d == 0x2e || d == 0x65 || d == 0x45)) break;
      this.at++;
    }
    if (this.at == start) return this.fail("unexpected character");
    out.kind = NUMBER;
    out.number = parseFloat(this.text.substring(start, this.at));
    if (isNaN(out.number)) return this.fail("not a number");
    return out;
  }

  /** A string literal starting at the opening quote; null (with jsonError) when malformed. */
  string(): string | null {
    this.at++;
    let out = "";
    let from = this.at;
    while (this.at < this.text.length) {
      const c = this.text.charCodeAt(this.at);
      if (c == 0x22) {
        out += this.text.substring(from, this.at);
        this.at++;
        return out;
      }
      if (c == 0x5c) {
        out += this.text.substring(from, this.at);
        const e = this.text.charCodeAt(this.at + 1);
        this.at += 2;
        if (e == 0x6e) out += "\n";
        else if (e == 0x74) out += "\t";
        else if (e == 0x72) out += "\r";
        else if (e == 0x62) out += "\b";
        else if (e == 0x66) out += "\f";
        else if (e == 0x75) {
          const unit = I32.parseInt(this.text.substr(this.at, 4), 16);
          this.at += 4;
          out += String.fromCharCode(unit);
        } else out += String.fromCharCode(e);
        from = this.at;
        continue;
      }
      this.at++;
    }
    jsonError = "unterminated string";
    return null;
  }
}

/** Parses `text` as JSON; null (and `jsonError` says why) when it is not. */
export function parseJson(text: string): Json | null {
  jsonError = "";
  const parser = new Parser(text);
  const value = parser.value(0);
  if (value == null) return null;
  parser.space();
  if (parser.at != text.length) {
    jsonError = "trailing characters at character " + parser.at.toString();
    return null;
  }
  return value;
}

/** `text` as a JSON string literal, quotes included: `"`, `\` and control characters escaped. */
export function quote(text: string): string {
  let out = "\"";
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c != 0x22 && c != 0x5c && c >= 0x20) continue;
    out += text.substring(from, i);
    if (c == 0x22) out += "\\\"";
    else if (c == 0x5c) out += "\\\\";
    else if (c == 0x0a) out += "\\n";
    else if (c == 0x09) out += "\\t";
    else if (c == 0x0d) out += "\\r";
    else out += "\\u00" + (c < 0x10 ? "0" : "") + c.toString(16);
    from = i + 1;
  }
  return out + text.substring(from) + "\"";
}

// ---------------------------------------------------------------------------------------------
// The context and the answer.

/** What berth sends besides the value under test. Names are lowercase DNS labels. */
export class Context {
  hook: string = "";
  tenant: string = "";
  plugin: string = "";
  /** The binding's settings: always a JSON object. */
  settings: Json = new Json();
  name: string = "";
  email: string = "";
  /** The plan's key, or null. */
  plan: string | null = null;

  /** Reads berth's context JSON (it is always well formed). */
  static parse(text: string): Context {
    const out = new Context();
    const json = parseJson(text);
    if (json == null) throw new Error("the context is not JSON: " + jsonError);
    out.hook = textOf(json.get("hook"));
    out.tenant = textOf(json.get("tenant"));
    out.plugin = textOf(json.get("plugin"));
    const settings = json.get("settings");
    if (settings != null) out.settings = settings;
    const submission = json.get("submission");
    if (submission != null) {
      out.name = textOf(submission.get("name"));
      out.email = textOf(submission.get("email"));
      const plan = submission.get("plan");
      if (plan != null && plan.isString()) out.plan = plan.text;
    }
    return out;
  }
}

function textOf(value: Json | null): string {
  return value != null && value.isString() ? value.text : "";
}

/** A plugin's answer: allow unless a reason is added. */
export class Outcome {
  codes: string[] = [];
  messages: string[] = [];
  /** A replacement HTML value (html hook, plugins uploaded with ?mutating=true). */
  rewrite: string | null = null;

  /** Adds a reason and makes the answer a deny. `code` must match [a-z0-9_]{1,32}. */
  deny(code: string, message: string): Outcome {
    this.codes.push(code);
    this.messages.push(message);
    return this;
  }

  denies(): bool {
    return this.codes.length > 0;
  }

  /** The output JSON of ABI v1. */
  toJson(): string {
    let out = "{\"verdict\":" + (this.denies() ? "\"deny\"" : "\"allow\"") + ",\"reasons\":[";
    for (let i = 0; i < this.codes.length; i++) {
      if (i > 0) out += ",";
      out += "{\"code\":" + quote(this.codes[i]) + ",\"message\":" + quote(this.messages[i]) + "}";
    }
    const rewrite = this.rewrite;
    return out + "],\"rewrite\":" + (rewrite == null ? "null" : quote(rewrite)) + "}";
  }
}

/** The return value of `berth_validate` for `outcome`. */
export function respond(outcome: Outcome): i64 {
  return packUtf8(outcome.toJson());
}

/** The return value of `berth_validate_settings`: valid, or refused with `message`. */
export function respondSettings(valid: bool, message: string = ""): i64 {
  if (valid) return packUtf8("{\"valid\":true}");
  return packUtf8("{\"valid\":false,\"message\":" + quote(message) + "}");
}
