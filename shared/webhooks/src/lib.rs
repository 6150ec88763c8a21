//! meshpay-webhooks (in progress).
