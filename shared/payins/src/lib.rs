//! Pay-ins: money coming in. Each invoice is paid to its own deposit address, the CREATE2
//! address of a forwarder clone of `contracts/DepositFactory.sol`, computed here off chain and
//! deployed only when there is something to sweep to the factory's fixed treasury.

pub mod deposit;
pub mod detect;
pub mod hint;
pub mod rpc;
pub mod sweep;
pub mod views;
