//! meshpay-confirm (in progress).
