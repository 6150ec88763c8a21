//! meshpay-signer
