// Runs the AssemblyScript kit's unit tests (kit.test.wasm, built by build.sh) under node. Each
// exported test_* function runs in a fresh instance, as berth runs each call; a test fails when
// it aborts (AssemblyScript's throw), and its message and location are printed.
import { readFileSync } from "node:fs";

const file = process.argv[2];
const bytes = readFileSync(file);
const module = new WebAssembly.Module(bytes);

/** An AssemblyScript string (UTF-16LE, byte length in the 4 bytes before it). */
function asString(memory, ptr) {
  if (!ptr) return "";
  const length = new Uint32Array(memory.buffer, ptr - 4, 1)[0];
  return Buffer.from(memory.buffer, ptr, length).toString("utf16le");
}

let failed = 0;
const names = WebAssembly.Module.exports(module).map((e) => e.name).filter((n) => n.startsWith("test_"));
for (const name of names) {
  let memory;
  const logs = [];
  const imports = {
    env: {
      abort(msg, fileName, line, col) {
        throw new Error(`${asString(memory, msg)} (at ${asString(memory, fileName)}:${line}:${col})`);
      },
    },
    berth_v1: {
      log(level, ptr, len) {
        logs.push([level, Buffer.from(memory.buffer, ptr, len).toString("utf8")]);
      },
    },
  };
  try {
    const instance = new WebAssembly.Instance(module, imports);
    memory = instance.exports.memory;
    instance.exports[name]();
    if (name === "test_log_reaches_the_host" && !(logs.length === 1 && logs[0][0] === 2 && logs[0][1] === "hello é")) {
      throw new Error(`the host received ${JSON.stringify(logs)}`);
    }
    console.log(`ok   ${name}`);
  } catch (error) {
    failed++;
    console.log(`FAIL ${name}: ${error.message}`);
  }
}
console.log(`${names.length - failed} passed, ${failed} failed`);
process.exit(failed || names.length === 0 ? 1 : 0);
