//! Known vectors: anvil account 0 (private key ac09…ff80, address 0xf39F…2266, public key
//! 04 8318…d2aa5) signing keccak256("meshpay-0") (y-parity 0) and keccak256("meshpay-2")
//! (y-parity 1), low-s as alloy's local signer (RFC 6979) produces them.

use super::*;
use alloy::primitives::{U256, address, b256, hex, keccak256};
use alloy::signers::SignerSync;
use alloy::signers::k256::{
    AffinePoint, ProjectivePoint, Scalar,
    elliptic_curve::{ops::Reduce, point::DecompressPoint, subtle::Choice},
};
use alloy::signers::local::PrivateKeySigner;

const ANVIL_0_KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const ANVIL_0_ADDRESS: Address = address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
const ANVIL_0_PUBLIC_KEY: &str = "048318535b54105d4a7aae60c08fc45f9687181b4fdfc625bd1a753fa7397fed753547f11ca8696646f2f3acb08e31016afac23e630c5d11f59f61fef57b0d2aa5";
/// The JWK Key Vault would return for that key (x, y base64url without padding).
const ANVIL_0_JWK: &str = r#"{
    "kid": "https://meshpay-test.vault.azure.net/keys/hot-1/0123456789abcdef0123456789abcdef",
    "kty": "EC-HSM", "crv": "P-256K", "key_ops": ["sign", "verify"],
    "x": "gxhTW1QQXUp6rmDAj8RflocYG0_fxiW9GnU_pzl_7XU",
    "y": "NUfxHKhpZkby86ywjjEBavrCPmMMXRH1n2H-9XsNKqU"
}"#;
/// secp256k1 group order n.
const N: U256 = U256::from_be_bytes(hex!(
    "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"
));

struct Vector {
    digest: B256,
    r: U256,
    s: U256,
    y_parity: bool,
}

fn vectors() -> [Vector; 2] {
    [
        Vector {
            digest: b256!("e12830b2d2fd0c8810518c7fe93a4aba1298d80490f2a46a902648e0dc03a342"),
            r: U256::from_be_bytes(hex!(
                "0491536a17bb644d5aad9a61925418e8b8e824b7b035b07c1669c02d6cbba519"
            )),
            s: U256::from_be_bytes(hex!(
                "34c571f4ea6d974c26a67d4accdda6b777f685994c5a284a77291b3d332ea4e2"
            )),
            y_parity: false,
        },
        Vector {
            digest: b256!("f12e9f786accdf12ed070bf28fd3ad4759cfa869e13477b025766afb06c0008c"),
            r: U256::from_be_bytes(hex!(
                "55f29644a687319d4e35cb15ce613492fa66e5f7ae21fd5290a9e0a42c1f3810"
            )),
            s: U256::from_be_bytes(hex!(
                "069060dbb3e3b2f918209da9eb1770540d4d5ddce1a4c6a166936b22a0e79a40"
            )),
            y_parity: true,
        },
    ]
}

fn anvil_0() -> PrivateKeySigner {
    ANVIL_0_KEY.parse().unwrap()
}

fn anvil_0_public_key() -> VerifyingKey {
    *anvil_0().credential().verifying_key()
}

fn raw(r: U256, s: U256) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&r.to_be_bytes::<32>());
    out[32..].copy_from_slice(&s.to_be_bytes::<32>());
    out
}

fn jwk(json: &str) -> JsonWebKey {
    serde_json::from_str(json).unwrap()
}

/// Public key recovery done by hand, Q = r⁻¹(s·R − e·G), so that high-s signatures (which
/// k256 refuses) can be checked too.
fn recover_by_hand(r: U256, s: U256, y_parity: bool, digest: &B256) -> Option<AffinePoint> {
    let r_bytes = FieldBytes::from(r.to_be_bytes::<32>());
    let big_r: AffinePoint = Option::from(AffinePoint::decompress(
        &r_bytes,
        Choice::from(u8::from(y_parity)),
    ))?;
    let r = <Scalar as Reduce<U256k>>::reduce_bytes(&r_bytes);
    let s = <Scalar as Reduce<U256k>>::reduce_bytes(&FieldBytes::from(s.to_be_bytes::<32>()));
    let e = <Scalar as Reduce<U256k>>::reduce_bytes(&FieldBytes::from(digest.0));
    let r_inv: Scalar = Option::from(r.invert())?;
    let q = (ProjectivePoint::from(big_r) * s - ProjectivePoint::GENERATOR * e) * r_inv;
    Some(q.to_affine())
}
type U256k = alloy::signers::k256::U256;

#[test]
fn jwk_of_anvil_account_0_derives_its_address() {
    let public_key = public_key_from_jwk(&jwk(ANVIL_0_JWK)).unwrap();
    assert_eq!(
        hex::encode(public_key.to_encoded_point(false).as_bytes()),
        ANVIL_0_PUBLIC_KEY
    );
    assert_eq!(address_of(&public_key), ANVIL_0_ADDRESS);
}

#[test]
fn low_s_signature_gets_the_parity_that_recovers_the_key() {
    for vector in vectors() {
        let signature = ethereum_signature(
            &raw(vector.r, vector.s),
            &vector.digest,
            &anvil_0_public_key(),
        )
        .unwrap();
        assert_eq!(
            signature,
            Signature::new(vector.r, vector.s, vector.y_parity)
        );
        assert_eq!(
            signature
                .recover_address_from_prehash(&vector.digest)
                .unwrap(),
            ANVIL_0_ADDRESS
        );
    }
}

#[test]
fn high_s_signature_is_flipped_to_low_s_and_its_parity_flips() {
    let public_key = anvil_0_public_key().as_affine().to_owned();
    for vector in vectors() {
        let high_s = N - vector.s;
        assert!(high_s > N >> 1, "vector must be in the high half");
        // The high-s form is valid ECDSA for the opposite parity: -R pairs with n - s.
        assert_eq!(
            recover_by_hand(vector.r, high_s, !vector.y_parity, &vector.digest),
            Some(public_key)
        );
        assert_ne!(
            recover_by_hand(vector.r, high_s, vector.y_parity, &vector.digest),
            Some(public_key)
        );

        let signature = ethereum_signature(
            &raw(vector.r, high_s),
            &vector.digest,
            &anvil_0_public_key(),
        )
        .unwrap();
        assert_eq!(signature.s(), vector.s, "s moved to the low half");
        assert_eq!(signature.v(), vector.y_parity, "parity of the low-s form");
    }
}

#[test]
fn recovered_parity_matches_the_local_signer_for_both_forms_of_many_signatures() {
    let signer = anvil_0();
    let public_key = anvil_0_public_key();
    let mut parities_seen = [false; 2];
    for i in 0u32..64 {
        let digest = keccak256(i.to_be_bytes());
        let expected = signer.sign_hash_sync(&digest).unwrap();
        parities_seen[usize::from(expected.v())] = true;
        for s in [expected.s(), N - expected.s()] {
            let signature =
                ethereum_signature(&raw(expected.r(), s), &digest, &public_key).unwrap();
            assert_eq!(signature, expected, "digest #{i}");
        }
    }
    assert_eq!(parities_seen, [true, true], "both parities exercised");
}

#[test]
fn signatures_that_are_not_64_bytes_are_rejected() {
    let public_key = anvil_0_public_key();
    let digest = vectors()[0].digest;
    let der_like = [&[0x30u8, 0x44, 0x02, 0x20][..], &[1u8; 66][..]].concat();
    for bytes in [vec![1u8; 63], vec![1u8; 65], der_like, Vec::new()] {
        let error = ethereum_signature(&bytes, &digest, &public_key).unwrap_err();
        assert!(
            matches!(error, KeyVaultSignerError::SignatureLength { len } if len == bytes.len()),
            "{error:?}"
        );
    }
}

#[test]
fn r_or_s_out_of_range_is_rejected() {
    let public_key = anvil_0_public_key();
    let vector = &vectors()[0];
    for bytes in [
        raw(U256::ZERO, vector.s),
        raw(vector.r, U256::ZERO),
        raw(vector.r, N),
        raw(N, vector.s),
    ] {
        let error = ethereum_signature(&bytes, &vector.digest, &public_key).unwrap_err();
        assert!(
            matches!(error, KeyVaultSignerError::InvalidSignature),
            "{error:?}"
        );
    }
}

#[test]
fn signature_by_another_key_does_not_recover_and_is_an_error() {
    let other = crate::anvil_dev_account(1).unwrap();
    let digest = vectors()[0].digest;
    let signature = other.sign_hash_sync(&digest).unwrap();
    let error = ethereum_signature(
        &raw(signature.r(), signature.s()),
        &digest,
        &anvil_0_public_key(),
    )
    .unwrap_err();
    assert!(
        matches!(error, KeyVaultSignerError::DoesNotRecover { address } if address == ANVIL_0_ADDRESS)
    );
}

#[test]
fn keys_that_are_not_secp256k1_signing_keys_are_rejected() {
    let p256 = ANVIL_0_JWK.replace("P-256K", "P-256");
    assert!(matches!(
        public_key_from_jwk(&jwk(&p256)),
        Err(KeyVaultSignerError::UnsupportedKey { .. })
    ));
    let rsa = ANVIL_0_JWK.replace("EC-HSM", "RSA");
    assert!(matches!(
        public_key_from_jwk(&jwk(&rsa)),
        Err(KeyVaultSignerError::UnsupportedKey { .. })
    ));
    let verify_only = ANVIL_0_JWK.replace(r#"["sign", "verify"]"#, r#"["verify"]"#);
    assert!(matches!(
        public_key_from_jwk(&jwk(&verify_only)),
        Err(KeyVaultSignerError::SignNotPermitted { .. })
    ));
    let software_key = ANVIL_0_JWK.replace("EC-HSM", "EC");
    assert!(
        public_key_from_jwk(&jwk(&software_key)).is_ok(),
        "software EC keys sign too"
    );
}

#[test]
fn jwk_coordinates_must_form_a_curve_point() {
    let mut key = jwk(ANVIL_0_JWK);
    key.y = None;
    assert!(matches!(
        public_key_from_jwk(&key),
        Err(KeyVaultSignerError::MissingCoordinate("y"))
    ));

    let mut key = jwk(ANVIL_0_JWK);
    if let Some(y) = key.y.as_mut() {
        y[31] ^= 1;
    }
    assert!(matches!(
        public_key_from_jwk(&key),
        Err(KeyVaultSignerError::InvalidPublicKey)
    ));

    let mut key = jwk(ANVIL_0_JWK);
    if let Some(x) = key.x.as_mut() {
        x.insert(0, 0);
    }
    assert!(matches!(
        public_key_from_jwk(&key),
        Err(KeyVaultSignerError::CoordinateLength {
            coordinate: "x",
            len: 33
        })
    ));
}

#[test]
fn coordinates_with_stripped_leading_zeros_are_padded() {
    // Find a key whose x coordinate starts with a zero byte (about 1 in 256).
    let (public_key, point) = (1u64..)
        .find_map(|scalar| {
            let mut bytes = [0u8; 32];
            bytes[24..].copy_from_slice(&scalar.to_be_bytes());
            let signer = PrivateKeySigner::from_slice(&bytes).ok()?;
            let public_key = *signer.credential().verifying_key();
            let point = public_key.to_encoded_point(false);
            (point.x()?[0] == 0).then_some((public_key, point))
        })
        .unwrap();
    let (x, y) = (point.x().unwrap(), point.y().unwrap());
    assert_eq!(public_key_from_coordinates(&x[1..], y).unwrap(), public_key);
}
