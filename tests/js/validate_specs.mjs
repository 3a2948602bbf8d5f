// Validates chatwire's API descriptions with real validators.
// usage: node validate_specs.mjs <openapi.json> <asyncapi.yaml>
// Exits 0 when both are valid; prints every problem otherwise.
import { readFileSync } from "node:fs";
import { Validator } from "@seriousme/openapi-schema-validator";
import { Parser } from "@asyncapi/parser";

const [openapiPath, asyncapiPath] = process.argv.slice(2);
let failed = false;

const openapi = new Validator();
const result = await openapi.validate(JSON.parse(readFileSync(openapiPath, "utf8")));
if (result.valid) {
  console.log(`openapi: valid (${openapi.version})`);
} else {
  failed = true;
  console.error("openapi: INVALID", JSON.stringify(result.errors, null, 2));
}

const { document, diagnostics } = await new Parser().parse(readFileSync(asyncapiPath, "utf8"));
const errors = diagnostics.filter((d) => d.severity === 0);
if (document && errors.length === 0) {
  console.log(`asyncapi: valid (${document.version()}), ${diagnostics.length} hints`);
} else {
  failed = true;
  for (const d of errors) console.error("asyncapi:", d.code, d.message, d.path.join("."));
}
process.exit(failed ? 1 : 0);
