//! meshpay-queue against a real Azurite (signed with the shared-key policy).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use meshpay_queue::{MessageEncoding, QueueService, SendOptions, StorageConnection};
use meshpay_testkit::azurite::Azurite;

const VISIBILITY: Duration = Duration::from_secs(30);

#[tokio::test]
async fn create_if_not_exists_reports_creation_once() {
    let azurite = Azurite::start().await;
    let queue = azurite.service().queue("created-once").unwrap();
    assert!(queue.create_if_not_exists().await.unwrap());
    assert!(!queue.create_if_not_exists().await.unwrap());
}

#[tokio::test]
async fn sent_message_is_received_with_body_and_host_metadata() {
    let azurite = Azurite::start().await;
    let queue = azurite.queue("roundtrip").await;
    let sent = queue
        .send(
            br#"{"hello":"world"}"#,
            MessageEncoding::Base64,
            SendOptions::default(),
        )
        .await
        .unwrap();

    let got = queue.receive(16, VISIBILITY).await.unwrap();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.id, sent.id);
    assert_eq!(m.dequeue_count, 1);
    assert_eq!(
        m.body(MessageEncoding::Base64).unwrap(),
        br#"{"hello":"world"}"#
    );
    assert_eq!(m.text, "eyJoZWxsbyI6IndvcmxkIn0=", "stored as base64 text");
    assert!(m.next_visible_time > m.insertion_time);
    assert!(m.expiration_time > m.insertion_time);
    assert!(
        queue.receive(16, VISIBILITY).await.unwrap().is_empty(),
        "invisible while held"
    );
}

#[tokio::test]
async fn released_message_comes_back_with_higher_dequeue_count() {
    let azurite = Azurite::start().await;
    let queue = azurite.queue("retry").await;
    queue
        .send(b"x1", MessageEncoding::None, SendOptions::default())
        .await
        .unwrap();

    let first = queue.receive(1, VISIBILITY).await.unwrap().remove(0);
    let receipt = queue
        .update_visibility(&first.id, &first.pop_receipt, Duration::ZERO)
        .await
        .unwrap();
    assert_ne!(
        receipt, first.pop_receipt,
        "update hands out a new pop receipt"
    );

    let second = queue.receive(1, VISIBILITY).await.unwrap().remove(0);
    assert_eq!(second.id, first.id);
    assert_eq!(second.dequeue_count, 2);
    queue
        .delete_message(&second.id, &second.pop_receipt)
        .await
        .unwrap();
    assert_eq!(queue.approximate_count().await.unwrap(), 0);
}

#[tokio::test]
async fn initial_visibility_delay_hides_a_new_message() {
    let azurite = Azurite::start().await;
    let queue = azurite.queue("delayed").await;
    let options = SendOptions {
        initial_visibility_delay: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    queue
        .send(b"later", MessageEncoding::Base64, options)
        .await
        .unwrap();
    assert!(queue.peek(32).await.unwrap().is_empty());
    assert_eq!(queue.approximate_count().await.unwrap(), 1);
}

#[tokio::test]
async fn deleting_with_a_stale_pop_receipt_is_rejected() {
    let azurite = Azurite::start().await;
    let queue = azurite.queue("stale").await;
    queue
        .send(b"m", MessageEncoding::Base64, SendOptions::default())
        .await
        .unwrap();
    let m = queue.receive(1, VISIBILITY).await.unwrap().remove(0);
    queue
        .update_visibility(&m.id, &m.pop_receipt, Duration::from_secs(5))
        .await
        .unwrap();
    let err = queue
        .delete_message(&m.id, &m.pop_receipt)
        .await
        .unwrap_err();
    // Azure and Azurite answer 400 PopReceiptMismatch.
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(err.to_string().contains("PopReceiptMismatch"), "{err}");
}

#[tokio::test]
async fn a_wrong_account_key_is_rejected_by_the_service() {
    let azurite = Azurite::start().await;
    let other_key = "dGhpcyBpcyBub3QgdGhlIGF6dXJpdGUga2V5IGF0IGFsbA==";
    let conn = StorageConnection::parse(&format!(
        "AccountName=devstoreaccount1;AccountKey={other_key};QueueEndpoint={}",
        azurite.queue_endpoint()
    ))
    .unwrap();
    let err = QueueService::new(&conn)
        .unwrap()
        .queue("denied")
        .unwrap()
        .create_if_not_exists()
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
}

#[tokio::test]
async fn a_missing_queue_is_reported_as_not_found() {
    let azurite = Azurite::start().await;
    let err = azurite
        .service()
        .queue("never-created")
        .unwrap()
        .receive(1, VISIBILITY)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
}
