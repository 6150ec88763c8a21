//! meshpay-chain
