// Compiles every contracts/*.sol with the pinned solc (npm), one compile per source file, into
// one contracts/<Contract>.json per contract it defines ({contractName, source, compiler, abi,
// methodIdentifiers, bytecode, deployedBytecode}). The JSON is committed so builds and tests
// never need solc; `--check` fails when a committed artifact differs from a fresh compile (make
// test runs it).
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const solc = require("solc");
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const check = process.argv.includes("--check");
const sources = readdirSync(join(root, "contracts"))
  .filter((file) => file.endsWith(".sol"))
  .sort()
  .map((file) => join("contracts", file));

let stale = false;
for (const source of sources) {
  for (const [name, contract] of Object.entries(compile(source))) {
    // Interfaces have no code and need no artifact.
    if (contract.evm.bytecode.object === "") continue;
    if (!emit(source, name, contract)) stale = true;
  }
}
if (stale) process.exit(1);

function compile(source) {
  const input = {
    language: "Solidity",
    sources: { [source]: { content: readFileSync(join(root, source), "utf8") } },
    settings: {
      optimizer: { enabled: true, runs: 200 },
      evmVersion: "cancun",
      // No metadata hash: the bytecode then depends only on source and compiler settings.
      metadata: { bytecodeHash: "none" },
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "evm.methodIdentifiers"] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (output.errors ?? []).filter((e) => e.severity === "error");
  for (const e of output.errors ?? []) console.error(e.formattedMessage);
  if (errors.length > 0) process.exit(1);
  return output.contracts[source];
}

// Writes (or with --check compares) one artifact; false when --check finds it stale.
function emit(source, name, contract) {
  const artifact = {
    contractName: name,
    source,
    compiler: `solc ${solc.version()}`,
    abi: contract.abi,
    methodIdentifiers: contract.evm.methodIdentifiers,
    bytecode: `0x${contract.evm.bytecode.object}`,
    deployedBytecode: `0x${contract.evm.deployedBytecode.object}`,
  };
  const text = `${JSON.stringify(artifact, null, 2)}\n`;
  const target = join(root, "contracts", `${name}.json`);
  if (!check) {
    writeFileSync(target, text);
    console.error(`wrote contracts/${name}.json (${artifact.compiler})`);
    return true;
  }
  let committed = "";
  try {
    committed = readFileSync(target, "utf8");
  } catch {
    // missing counts as different
  }
  if (committed !== text) {
    console.error(`contracts/${name}.json is stale: run scripts/compile-contracts.sh and commit it`);
    return false;
  }
  console.error(`contracts/${name}.json matches a fresh compile (${artifact.compiler})`);
  return true;
}
