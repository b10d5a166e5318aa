//! Webhook signatures, delivery parsing and the receiver (`domain::webhooks`,
//! `domain::webhook_receiver`) on arbitrary bodies and signature headers: never a panic; only
//! the HMAC of the exact bytes verifies; a signed delivery is logged and acknowledged (or
//! refused as malformed) with text a PostgreSQL column can hold.
#![no_main]

use std::sync::{Arc, OnceLock};

use domain::memory::{CountingObserver, MemoryDeliveryStore, MemoryInvalidator};
use domain::webhook_log::DeliveryLog;
use domain::webhook_receiver::{ReceiveError, WebhookReceiver, event_label};
use domain::webhooks::{SignatureVerifier, WebhookError, WebhookEvent, body_digest};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "fuzz-secret-of-some-length";

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    // First line: the X-Webhook-Signature value (a line of `-` alone: no header); the rest:
    // the body.
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (std::str::from_utf8(&data[..i]).ok(), &data[i + 1..]),
        None => (None, data),
    };
    let header = header.filter(|h| *h != "-");
    let verifier = Arc::new(SignatureVerifier::new(SECRET.into()));

    let signed = verifier.sign(body);
    assert_eq!(verifier.verify(Some(&signed), body), Ok(()));

    // A header the fuzzer made verifies only if it carries the body's HMAC.
    match verifier.verify(header, body) {
        Ok(()) => {
            let digest = header.unwrap().trim().strip_prefix("sha256=").unwrap();
            assert!(
                digest.eq_ignore_ascii_case(&signed["sha256=".len()..]),
                "forged signature {header:?} verified"
            );
        }
        Err(WebhookError::MissingSignature) => assert!(header.is_none()),
        Err(WebhookError::InvalidSignature) => assert!(header.is_some()),
        Err(e) => panic!("verify gave {e:?}"),
    }

    // Any change of the body, or of one bit of the signature, is refused.
    let mut changed = body.to_vec();
    match changed.get_mut(body.len() / 2) {
        Some(byte) => *byte ^= 1 << (body.len() % 8),
        None => changed.push(0),
    }
    assert_eq!(
        verifier.verify(Some(&signed), &changed),
        Err(WebhookError::InvalidSignature)
    );
    let mut digest = hex::decode(&signed["sha256=".len()..]).unwrap();
    digest[body.len() % 32] ^= 0x80;
    let bad = format!("sha256={}", hex::encode(digest));
    assert_eq!(
        verifier.verify(Some(&bad), body),
        Err(WebhookError::InvalidSignature)
    );

    let parsed = WebhookEvent::parse(body);
    let _ = event_label(&parsed);
    if let Ok(event) = &parsed {
        let _ = event.invalidation_plan();
    }

    // The whole pipeline, on a fresh in-memory log.
    let log = DeliveryLog::new(MemoryDeliveryStore::new());
    let receiver = WebhookReceiver::new(
        log.clone(),
        Arc::new(MemoryInvalidator::new()),
        verifier,
        Arc::new(CountingObserver::new()),
    );
    runtime().block_on(async {
        // The fuzzer's own header first: refused, unless it is the HMAC spelt another way
        // (case, surrounding spaces), and then the signed delivery below is its retry.
        let mut acknowledged_before = false;
        if header != Some(signed.as_str()) {
            match receiver.receive(header, body).await {
                Err(ReceiveError::Signature(_)) => {}
                other => {
                    assert!(
                        header.is_some_and(|h| h.trim().eq_ignore_ascii_case(&signed)),
                        "unsigned delivery gave {other:?}"
                    );
                    acknowledged_before = other.is_ok();
                }
            }
        }
        let first = receiver.receive(Some(&signed), body).await;
        match (&first, &parsed) {
            (Ok(receipt), Ok(_)) => assert_eq!(receipt.duplicate, acknowledged_before),
            (Err(ReceiveError::Malformed { .. }), Err(_)) => {}
            (other, parsed) => panic!("signed delivery gave {other:?} for {parsed:?}"),
        }
        let record = log
            .find_by_digest(&body_digest(body))
            .await
            .unwrap()
            .expect("a signed delivery is logged");
        // The SQL adapter keeps these in PostgreSQL text columns, which cannot hold NUL.
        for (what, text) in [
            ("event_type", record.event_type.as_str()),
            ("payload", record.payload.as_str()),
            ("error", record.error.as_deref().unwrap_or("")),
        ] {
            assert!(!text.contains('\0'), "{what} holds NUL: {text:?}");
        }
        assert!(record.event_type.chars().count() <= 64);

        // DCS's retry of the same bytes.
        let again = receiver.receive(Some(&signed), body).await;
        match (&first, &again) {
            (Ok(a), Ok(b)) => assert!(b.duplicate && a.event_id == b.event_id),
            (Err(ReceiveError::Malformed { .. }), Err(ReceiveError::Malformed { .. })) => {}
            (a, b) => panic!("retry of {a:?} gave {b:?}"),
        }
    });
});
