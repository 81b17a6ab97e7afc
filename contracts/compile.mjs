// Compiles TestToken.sol with the pinned solc-js (standard JSON, evmVersion "cancun",
// optimizer on) and writes TestToken.abi and TestToken.bin into
// internal/chains/evm/devchain, where they are committed: builds and CI never need node.
//
//   cd contracts && npm ci && node compile.mjs     (or: go generate ./internal/chains/evm/devchain)
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import solc from "solc";

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.join(here, "..", "internal", "chains", "evm", "devchain");
const source = "TestToken.sol";

const input = {
  language: "Solidity",
  sources: { [source]: { content: fs.readFileSync(path.join(here, source), "utf8") } },
  settings: {
    evmVersion: "cancun",
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
  },
};

// Resolves "@openzeppelin/..." imports from node_modules, nothing else.
function findImports(p) {
  const file = path.join(here, "node_modules", p);
  if (!p.startsWith("@openzeppelin/contracts/") || !fs.existsSync(file)) {
    return { error: `import not found: ${p}` };
  }
  return { contents: fs.readFileSync(file, "utf8") };
}

const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length > 0) process.exit(1);

const c = output.contracts[source].TestToken;
fs.writeFileSync(path.join(out, "TestToken.abi"), JSON.stringify(c.abi, null, 2) + "\n");
fs.writeFileSync(path.join(out, "TestToken.bin"), c.evm.bytecode.object + "\n");
console.log(`solc ${solc.version()}: wrote TestToken.abi and TestToken.bin (${c.evm.bytecode.object.length / 2} bytes) to ${path.relative(here, out)}`);
