// Sets up the dev chain for `make dev`: deploys contracts/DevUSDC.json from anvil account 0,
// mints USDC to the hot wallets of chains.dev.toml, and deploys the pay-ins DepositFactory. Idempotent: when the contract already has
// code at its address (same anvil still running), only the mints are skipped too.
//
//   node scripts/dev-chain.mjs [--rpc http://127.0.0.1:8545]
//
// Deployed by account 0 at nonce 0, the contract lands at the address chains.dev.toml
// configures (CREATE address = keccak(rlp(sender, nonce))), so the config never changes.
// Uses anvil's unlocked dev accounts (eth_sendTransaction): dev only.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const rpcUrl = args.includes("--rpc") ? args[args.indexOf("--rpc") + 1] : "http://127.0.0.1:8545";

const DEPLOYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"; // anvil account 0
const USDC = "0x5FbDB2315678afecb367f032d93F642f64180aa3"; // its nonce-0 CREATE address
const HOT_WALLETS = [
  "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", // anvil account 1
  "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", // anvil account 2
];
const MINT_EACH = 1_000_000n * 10n ** 6n; // 1,000,000.000000 USDC per hot wallet

let id = 0;
async function rpc(method, params = []) {
  const res = await fetch(rpcUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: ++id, method, params }),
  });
  const body = await res.json();
  if (body.error) throw new Error(`${method}: ${JSON.stringify(body.error)}`);
  return body.result;
}

async function sendAndWait(tx) {
  const hash = await rpc("eth_sendTransaction", [tx]);
  for (let i = 0; i < 600; i++) {
    const receipt = await rpc("eth_getTransactionReceipt", [hash]);
    if (receipt) {
      if (receipt.status !== "0x1") throw new Error(`transaction ${hash} reverted`);
      return receipt;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`transaction ${hash} not mined within 60 s`);
}

const word = (hex) => hex.replace(/^0x/, "").toLowerCase().padStart(64, "0");
const artifact = JSON.parse(readFileSync(join(root, "contracts", "DevUSDC.json"), "utf8"));
const mintSelector = artifact.methodIdentifiers["mint(address,uint256)"];

// The pay-ins DepositFactory (contracts/DepositFactory.sol): account 9's first transaction, so
// at the address chains.dev.toml configures. Treasury: hot wallet account 1; sweepers: both hot
// wallets; admin: account 9.
const FACTORY_ADMIN = "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"; // anvil account 9
const FACTORY = "0x700b6A60ce7EaaEA56F065753d8dcB9653dbAD35"; // its nonce-0 CREATE address
if ((await rpc("eth_getCode", [FACTORY, "latest"])) === "0x") {
  const factory = JSON.parse(readFileSync(join(root, "contracts", "DepositFactory.json"), "utf8"));
  const args = word(HOT_WALLETS[0]) + word(FACTORY_ADMIN) + word("60") + word("2")
    + word(HOT_WALLETS[0]) + word(HOT_WALLETS[1]);
  const deployed = await sendAndWait({ from: FACTORY_ADMIN, data: factory.bytecode + args });
  if (deployed.contractAddress.toLowerCase() !== FACTORY.toLowerCase()) {
    throw new Error(`DepositFactory deployed at ${deployed.contractAddress}, expected ${FACTORY}`);
  }
  console.error(`DepositFactory deployed at ${FACTORY}`);
}

const code = await rpc("eth_getCode", [USDC, "latest"]);
if (code !== "0x") {
  console.error(`USDC already deployed at ${USDC}`);
  process.exit(0);
}
const nonce = await rpc("eth_getTransactionCount", [DEPLOYER, "latest"]);
if (nonce !== "0x0") {
  console.error(
    `account 0 has nonce ${nonce}: USDC would not land at ${USDC}. Restart anvil (make clean-stack) and retry.`,
  );
  process.exit(1);
}
const receipt = await sendAndWait({ from: DEPLOYER, data: artifact.bytecode });
if (receipt.contractAddress.toLowerCase() !== USDC.toLowerCase()) {
  throw new Error(`USDC deployed at ${receipt.contractAddress}, expected ${USDC}`);
}
for (const wallet of HOT_WALLETS) {
  const data = `0x${mintSelector}${word(wallet)}${word(MINT_EACH.toString(16))}`;
  await sendAndWait({ from: DEPLOYER, to: USDC, data });
}
console.error(`USDC deployed at ${USDC}; minted ${MINT_EACH / 10n ** 6n} USDC to each hot wallet`);
