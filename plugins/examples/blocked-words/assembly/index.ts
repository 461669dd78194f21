// blocked-words (name hook), in AssemblyScript with berth's kit (plugins/sdk-as): refuses
// names that contain a blocked word anywhere ("my-casino-shop", "cryptobank").
//
// Settings: {"words": ["casino", "crypto"]} (default: casino, lottery, crypto). Each word is
// lowercase letters and digits, 3 to 32 of them; berth_validate_settings refuses anything else
// with a message that names the offending entry.
//
// Build: asc assembly/index.ts --runtime stub -O3 -o blocked_words.wasm
// (plugins/build.sh does this with the pinned assemblyscript).

import { Context, Json, Outcome, log, INFO, parseJson, jsonError, readUtf8, respond, respondSettings } from "../../../sdk-as/assembly/berth";

export { berth_abi_version, berth_alloc } from "../../../sdk-as/assembly/berth";

const DEFAULT_WORDS: string[] = ["casino", "lottery", "crypto"];

/** Why `words` is not a valid setting, or "" when it is. */
function problem(words: Json): string {
  if (!words.isArray()) return "words must be a list of strings";
  if (words.items.length > 200) return "words: at most 200 words";
  for (let i = 0; i < words.items.length; i++) {
    const word = words.items[i];
    if (!word.isString()) return "words[" + i.toString() + "] is not a string";
    const text = word.text;
    if (text.length < 3 || text.length > 32) {
      return "words[" + i.toString() + "] (\"" + text + "\") must be 3 to 32 characters";
    }
    for (let j = 0; j < text.length; j++) {
      const c = text.charCodeAt(j);
      if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39))) {
        return "words[" + i.toString() + "] (\"" + text + "\") may only hold lowercase letters and digits";
      }
    }
  }
  return "";
}

function wordsOf(settings: Json): string[] {
  const words = settings.get("words");
  if (words == null) return DEFAULT_WORDS;
  const out: string[] = [];
  for (let i = 0; i < words.items.length; i++) out.push(words.items[i].text);
  return out;
}

export function berth_validate(ctxPtr: i32, ctxLen: i32, valPtr: i32, valLen: i32): i64 {
  const context = Context.parse(readUtf8(ctxPtr, ctxLen));
  const name = readUtf8(valPtr, valLen);
  const words = wordsOf(context.settings);
  const outcome = new Outcome();
  for (let i = 0; i < words.length; i++) {
    if (name.includes(words[i])) {
      outcome.deny("blocked_word", "\"" + name + "\" contains \"" + words[i] + "\", which " + context.tenant + " does not allow in site names");
    }
  }
  log(INFO, "checked " + name + " against " + words.length.toString() + " blocked words");
  return respond(outcome);
}

export function berth_validate_settings(ptr: i32, len: i32): i64 {
  const settings = parseJson(readUtf8(ptr, len));
  if (settings == null) return respondSettings(false, "settings are not JSON: " + jsonError);
  const words = settings.get("words");
  if (words == null) {
    log(INFO, "no words given; using the defaults");
    return respondSettings(true);
  }
  const why = problem(words);
  if (why != "") return respondSettings(false, why);
  log(INFO, "settings accepted: " + words.items.length.toString() + " words");
  return respondSettings(true);
}
