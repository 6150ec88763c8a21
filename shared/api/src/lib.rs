//! meshpay-api
