//! meshpay-shim
