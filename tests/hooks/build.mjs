// Builds the hooks written in AssemblyScript and JavaScript into WebAssembly, offline, with the
// npm packages of tests/peers (`npm ci --prefix tests/peers` installs them):
//
//   node tests/hooks/build.mjs OUT_DIR
//
// writes OUT_DIR/custom_auth_as.wasm (a core module: asc, `stub` runtime) and
// OUT_DIR/custom_auth_js.wasm (a component of the world in crates/gatehouse-hooks/wit/hooks.wit:
// componentize-js, StarlingMonkey inside). A build whose output is newer than its sources is
// skipped. Outputs are written to a temporary name and renamed, so a reader never sees half a
// file. The WAT hooks need none of this: the Rust tests compile them in-process.
import { mkdir, rename, stat, writeFile, rm } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");
const peers = join(root, "tests", "peers");
// The packages' ESM entry points, by path: their `exports` offer no `require` condition.
const modules = join(peers, "node_modules");
const entry = (path) => pathToFileURL(join(modules, path)).href;

async function mtime(path) {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return -1;
  }
}

async function fresh(output, sources) {
  const out = await mtime(output);
  if (out < 0) return false;
  for (const s of sources) {
    if ((await mtime(s)) >= out) return false;
  }
  return true;
}

async function place(output, bytes) {
  const tmp = `${output}.${process.pid}.tmp`;
  await writeFile(tmp, bytes);
  await rename(tmp, output);
}

async function buildAssemblyScript(outDir) {
  const source = join(here, "custom_auth.ts");
  const output = join(outDir, "custom_auth_as.wasm");
  if (await fresh(output, [source, fileURLToPath(import.meta.url)])) return output;
  const asc = await import(entry("assemblyscript/dist/asc.js"));
  const tmp = `${output}.${process.pid}.tmp`;
  const { error, stderr } = await asc.main([
    "custom_auth.ts",
    "--baseDir", here,
    "--outFile", tmp,
    "--runtime", "stub",
    "--optimizeLevel", "3",
    "--shrinkLevel", "0",
    // Runtime errors trap through the module's own `abort`: the module imports nothing.
    "--use", "abort=custom_auth/abort",
  ]);
  if (error) {
    await rm(tmp, { force: true });
    throw new Error(`asc failed: ${error.message}\n${stderr.toString()}`);
  }
  await rename(tmp, output);
  return output;
}

async function buildJavaScript(outDir) {
  const source = join(here, "custom_auth.js");
  const wit = join(root, "crates", "gatehouse-hooks", "wit", "hooks.wit");
  const output = join(outDir, "custom_auth_js.wasm");
  if (await fresh(output, [source, wit, fileURLToPath(import.meta.url)])) return output;
  const { componentize } = await import(
    entry("@bytecodealliance/componentize-js/src/componentize.js")
  );
  // Absolute paths: componentize-js fails on relative ones. Every WASI feature is disabled, so
  // the component imports nothing.
  const { component } = await componentize({
    sourcePath: source,
    witPath: wit,
    worldName: "trigger",
    disableFeatures: ["random", "stdio", "clocks", "http", "fetch-event"],
  });
  await place(output, component);
  return output;
}

const outDir = process.argv[2];
if (!outDir) {
  console.error("usage: node tests/hooks/build.mjs OUT_DIR");
  process.exit(2);
}
await mkdir(resolve(outDir), { recursive: true });
const which = process.argv.slice(3);
const want = (name) => which.length === 0 || which.includes(name);
if (want("assemblyscript")) console.log(await buildAssemblyScript(resolve(outDir)));
if (want("javascript")) console.log(await buildJavaScript(resolve(outDir)));
