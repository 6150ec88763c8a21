//! meshpay-domain
