//! The stack the pipeline modules pay from: the whole stack and a funded merchant with a key of
//! every scope. `M` marks the module whose helpers the stack carries, so each module adds its
//! own inherent methods (`impl PipelineStack<Broadcast> { ... }`) without clashing.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use meshpay_domain::PaymentId;
use meshpay_testkit::merchant::{Merchant, MerchantSetup};
use meshpay_testkit::stack::{Stack, StackBuilder};
use serde_json::Value;

pub struct PipelineStack<M> {
    pub stack: Stack,
    pub merchant: Merchant,
    module: PhantomData<M>,
}

impl<M> PipelineStack<M> {
    /// Starts `builder`'s stack and creates the merchant `setup` describes, with a key.
    pub async fn start_with(builder: StackBuilder, setup: MerchantSetup) -> Self {
        let stack = builder.start().await;
        let merchant = setup.create_with_key(&stack.store).await;
        PipelineStack {
            stack,
            merchant,
            module: PhantomData,
        }
    }

    /// Quotes and authorizes `amount` of `asset` to `recipient` over HTTP; returns (payment id,
    /// quoted amount in base units).
    pub async fn pay(&self, asset: &str, amount: &str, recipient: &str) -> (PaymentId, u128) {
        self.api()
            .pay(&self.merchant.key, asset, amount, recipient)
            .await
    }

    /// `GET /api/payments/{id}` as the merchant sees it.
    pub async fn payment_view(&self, id: PaymentId) -> Value {
        self.api().payment(&self.merchant.key, id).await
    }
}

impl<M> Deref for PipelineStack<M> {
    type Target = Stack;

    fn deref(&self) -> &Stack {
        &self.stack
    }
}

impl<M> DerefMut for PipelineStack<M> {
    fn deref_mut(&mut self) -> &mut Stack {
        &mut self.stack
    }
}
