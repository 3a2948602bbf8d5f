#!/usr/bin/env node
// Builds @chatwire/client for browsers as one ES module (socket.io-client left as an
// import, which the demo page maps to the vendored client): static/chatwire-client.mjs,
// served by the server at /assets/chatwire-client.mjs. tests/demo.rs checks that the
// committed file is what this makes from src/.
// usage: node scripts/build-browser.mjs [outfile]
import { fileURLToPath } from "node:url";

import { build } from "esbuild";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const outfile = process.argv[2] ?? here("../../../static/chatwire-client.mjs");
await build({
  // Paths in the output are relative to the package, wherever this runs from.
  absWorkingDir: here(".."),
  entryPoints: [here("../src/index.ts")],
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  external: ["socket.io-client"],
  banner: {
    js: "// @chatwire/client for browsers: generated from clients/js/src by `npm run build:browser`\n// (clients/js/scripts/build-browser.mjs); do not edit. socket.io-client stays an import.",
  },
  outfile,
  logLevel: "warning",
});
