//! meshpay-store
