//! meshpay-queue
