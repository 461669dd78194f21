// Unit tests of the AssemblyScript kit, compiled with asc and run by run.mjs under node: each
// exported `test_*` runs in a fresh instance and fails by throwing (env.abort).

import { Context, Outcome, parseJson, jsonError, quote, log, WARN, berth_alloc } from "../assembly/berth";

function check(ok: bool, what: string): void {
  if (!ok) throw new Error(what);
}

export function test_the_context_berth_sends_is_read(): void {
  const c = Context.parse("{\"abi\":1,\"hook\":\"name\",\"plugin\":\"p\",\"settings\":{\"words\":[\"a\\\"b\",\"\\u00e9\\n\"]},\"submission\":{\"email\":\"ann@example.com\",\"name\":\"my-shop\",\"plan\":null},\"tenant\":\"default\"}");
  check(c.hook == "name" && c.plugin == "p" && c.tenant == "default", "hook, plugin, tenant");
  check(c.name == "my-shop" && c.email == "ann@example.com" && c.plan == null, "submission");
  const words = c.settings.get("words");
  check(words != null && words.items.length == 2, "settings list");
  check(words!.items[0].text == "a\"b" && words!.items[1].text == "é\n", "escapes decoded");
}

export function test_a_plan_is_read_when_given(): void {
  const c = Context.parse("{\"settings\":{},\"submission\":{\"name\":\"x\",\"email\":\"e\",\"plan\":\"pro\"}}");
  check(c.plan == "pro", "plan");
}

export function test_numbers_booleans_and_nesting_parse(): void {
  const v = parseJson(" {\"n\": -12.5e1, \"t\": true, \"f\": false, \"z\": null, \"a\": [[], {}]} ");
  check(v != null, "parsed: " + jsonError);
  check(v!.get("n")!.number == -125.0, "number");
  check(v!.get("t")!.boolean && !v!.get("f")!.boolean && v!.get("z")!.isNull(), "literals");
  check(v!.get("a")!.items.length == 2 && v!.get("missing") == null, "nesting");
}

export function test_malformed_json_is_refused_with_a_reason(): void {
  const cases = ["", "{", "{\"a\" 1}", "[1,]", "\"open", "{} x", "nul", "[" + "[".repeat(80)];
  for (let i = 0; i < cases.length; i++) {
    check(parseJson(cases[i]) == null, "accepted " + cases[i]);
    check(jsonError.length > 0, "no reason for " + cases[i]);
  }
}

export function test_quote_escapes_what_json_needs(): void {
  check(quote("a\"b\\c\nd\te\u0001") == "\"a\\\"b\\\\c\\nd\\te\\u0001\"", quote("a\"b\\c\nd\te\u0001"));
  check(quote("é😀") == "\"é😀\"", "non-ASCII kept");
}

export function test_the_output_is_the_abi_json(): void {
  check(new Outcome().toJson() == "{\"verdict\":\"allow\",\"reasons\":[],\"rewrite\":null}", "allow");
  const deny = new Outcome().deny("no_casino", "\"casino\" is not allowed");
  check(deny.denies(), "deny");
  check(deny.toJson() == "{\"verdict\":\"deny\",\"reasons\":[{\"code\":\"no_casino\",\"message\":\"\\\"casino\\\" is not allowed\"}],\"rewrite\":null}", deny.toJson());
  const rewrite = new Outcome();
  rewrite.rewrite = "<p>\"x\"</p>";
  check(rewrite.toJson().endsWith("\"rewrite\":\"<p>\\\"x\\\"</p>\"}"), rewrite.toJson());
}

export function test_alloc_gives_distinct_buffers_even_for_zero(): void {
  const a = berth_alloc(0);
  const b = berth_alloc(10);
  const c = berth_alloc(1);
  check(a != 0 && b != 0 && c != 0, "non-zero");
  check(c >= b + 10, "no overlap");
  check(berth_alloc(-1) == 0, "negative refused");
}

export function test_log_reaches_the_host(): void {
  log(WARN, "hello é");
}
