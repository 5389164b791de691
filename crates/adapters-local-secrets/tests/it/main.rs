//! The secret store conformance suite against the local encrypted store, plus its own cases:
//! tampering, wrong keys, key files, rotation under concurrent reads.

// Helpers here are test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::sync::Arc;

use connector_adapters_local_secrets::{KeySource, LocalSecretStore, rotate_key};
use connector_ports::{SecretStore, SecretStoreError};
use test_support::conformance::secret_store::{fresh_name as name, secret};

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("sc-local-{}", uuid::Uuid::new_v4().simple())))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn file_store(dir: &TempDir) -> LocalSecretStore {
    LocalSecretStore::open(
        dir.0.join("secrets"),
        KeySource::File(dir.0.join("secrets.key")),
    )
    .unwrap()
}

async fn store() -> (TempDir, LocalSecretStore) {
    let dir = TempDir::new();
    let store = file_store(&dir);
    (dir, store)
}

test_support::secret_store_conformance!(store());

const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const KEY_B: &str = "HxoZGBcWFRQTEhEQDw4NDAsKCQgHBgUEAwIBAB8eHRw=";

fn secret_files(dir: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".secret.json"))
        .collect()
}

#[tokio::test]
async fn values_are_encrypted_at_rest_and_files_are_private() {
    let (dir, store) = store().await;
    let (n, l) = name("acme");
    store
        .put(&n, &secret("xoxb-1111-2222-plaintextcheck"), &l)
        .await
        .unwrap();
    let files = secret_files(&dir.0.join("secrets"));
    assert_eq!(files.len(), 1);
    let raw = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        !raw.contains("plaintextcheck"),
        "the token is readable on disk: {raw}"
    );
    assert_eq!(
        std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let key = dir.0.join("secrets.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(dir.0.join("secrets"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
}

#[tokio::test]
async fn tampering_fails_loudly() {
    let (dir, store) = store().await;
    let (n, l) = name("acme");
    store
        .put(&n, &secret("xoxb-1111-2222-tampercheck"), &l)
        .await
        .unwrap();
    let file = secret_files(&dir.0.join("secrets")).remove(0);
    let mut envelope: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    // Flip one byte of the ciphertext.
    let ct = envelope["ciphertext"].as_str().unwrap().to_owned();
    let mut bytes = base64_decode(&ct);
    bytes[0] ^= 0x01;
    envelope["ciphertext"] = base64_encode(&bytes).into();
    std::fs::write(&file, envelope.to_string()).unwrap();
    let err = store.get(&n).await.unwrap_err();
    assert!(matches!(err, SecretStoreError::Unknown(_)), "{err:?}");
    assert!(err.to_string().contains("failed authentication"), "{err}");
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_connector_does_not_decrypt() {
    let (dir, store) = store().await;
    let (a, la) = name("acme");
    let (b, lb) = name("acme");
    store
        .put(&a, &secret("xoxb-1111-2222-aaaaaaaa"), &la)
        .await
        .unwrap();
    store
        .put(&b, &secret("xoxb-1111-2222-bbbbbbbb"), &lb)
        .await
        .unwrap();
    // Copy a's envelope over b's file, keeping b's name in it.
    let files = secret_files(&dir.0.join("secrets"));
    let read = |p: &PathBuf| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let (fa, fb) = if read(&files[0])["name"] == a.as_str() {
        (files[0].clone(), files[1].clone())
    } else {
        (files[1].clone(), files[0].clone())
    };
    let mut moved = read(&fa);
    moved["name"] = b.as_str().into();
    std::fs::write(&fb, moved.to_string()).unwrap();
    let err = store.get(&b).await.unwrap_err();
    assert!(err.to_string().contains("failed authentication"), "{err}");
}

#[tokio::test]
async fn the_wrong_key_fails_loudly() {
    let dir = TempDir::new();
    let secrets = dir.0.join("secrets");
    let with_a = LocalSecretStore::open(&secrets, KeySource::from_base64(KEY_A).unwrap()).unwrap();
    let (n, l) = name("acme");
    with_a
        .put(&n, &secret("xoxb-1111-2222-keyacheck"), &l)
        .await
        .unwrap();
    assert_eq!(
        with_a.get(&n).await.unwrap().bot_token.expose(),
        "xoxb-1111-2222-keyacheck"
    );

    let with_b = LocalSecretStore::open(&secrets, KeySource::from_base64(KEY_B).unwrap()).unwrap();
    let err = with_b.get(&n).await.unwrap_err();
    assert!(err.to_string().contains("wrong key"), "{err}");
    assert!(
        KeySource::from_base64("dG9vIHNob3J0").is_err(),
        "16 bytes is not a key"
    );
}

#[tokio::test]
async fn a_key_file_readable_by_others_is_refused() {
    let dir = TempDir::new();
    let store = file_store(&dir);
    drop(store);
    let key = dir.0.join("secrets.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = LocalSecretStore::open(dir.0.join("secrets"), KeySource::File(key)).unwrap_err();
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[tokio::test]
async fn rotation_reencrypts_everything_and_retires_the_old_key() {
    let (dir, store) = store().await;
    let mut names = Vec::new();
    for i in 0..20 {
        let (n, l) = name("acme");
        store
            .put(&n, &secret(&format!("xoxb-1111-2222-token{i:04}")), &l)
            .await
            .unwrap();
        names.push(n);
    }
    let key_file = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.0.join("secrets.key")).unwrap()).unwrap()
    };
    let old = key_file()["active"].as_str().unwrap().to_owned();
    let report = rotate_key(&store).await.unwrap();
    assert_eq!(report.reencrypted, 20);
    assert_ne!(report.new_key_id, old);
    assert_eq!(report.retired, vec![old.clone()]);
    assert_eq!(key_file()["active"], report.new_key_id.as_str());
    assert!(
        key_file()["keys"].get(&old).is_none(),
        "the old key is gone"
    );
    for f in secret_files(&dir.0.join("secrets")) {
        let e: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        assert_eq!(e["key_id"], report.new_key_id.as_str());
    }
    // A store opened before the rotation still reads everything (it reloads the keyring).
    for (i, n) in names.iter().enumerate() {
        assert_eq!(
            store.get(n).await.unwrap().bot_token.expose(),
            format!("xoxb-1111-2222-token{i:04}")
        );
    }
}

#[tokio::test]
async fn rotation_under_concurrent_reads_writes_and_deletes_loses_nothing() {
    let dir = TempDir::new();
    let store = file_store(&dir);
    // Another process's view of the same directory.
    let other = Arc::new(file_store(&dir));
    let mut names = Vec::new();
    for i in 0..40 {
        let (n, l) = name("acme");
        store
            .put(&n, &secret(&format!("xoxb-1111-2222-value{i:04}")), &l)
            .await
            .unwrap();
        names.push(n);
    }
    let names = Arc::new(names);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for r in 0..4 {
        let (other, names, stop) = (other.clone(), names.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for (i, n) in names.iter().enumerate().skip(r).step_by(4) {
                    let got = other.get(n).await.unwrap();
                    assert_eq!(
                        got.bot_token.expose(),
                        format!("xoxb-1111-2222-value{i:04}")
                    );
                    reads += 1;
                }
            }
            reads
        }));
    }
    // A writer and a deleter in the other process while rotating.
    let writer = {
        let other = other.clone();
        tokio::spawn(async move {
            let mut written = Vec::new();
            for i in 0..30 {
                let (n, l) = name("acme");
                other
                    .put(&n, &secret(&format!("xoxb-1111-2222-during{i:04}")), &l)
                    .await
                    .unwrap();
                written.push((n, i));
            }
            written
        })
    };
    let (doomed, dl) = name("acme");
    store
        .put(&doomed, &secret("xoxb-1111-2222-doomedvalue"), &dl)
        .await
        .unwrap();
    let deleter = {
        let (other, doomed) = (other.clone(), doomed.clone());
        tokio::spawn(async move { other.delete(&doomed).await.unwrap() })
    };
    let report = rotate_key(&store).await.unwrap();
    deleter.await.unwrap();
    let written = writer.await.unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut total_reads = 0;
    for r in readers {
        total_reads += r.await.unwrap();
    }
    assert!(total_reads > 0);
    assert!(report.reencrypted >= 40, "{report:?}");
    // Everything written before or during the rotation reads back, and the deleted secret
    // stays deleted.
    for (i, n) in names.iter().enumerate() {
        assert_eq!(
            store.get(n).await.unwrap().bot_token.expose(),
            format!("xoxb-1111-2222-value{i:04}")
        );
    }
    for (n, i) in &written {
        assert_eq!(
            store.get(n).await.unwrap().bot_token.expose(),
            format!("xoxb-1111-2222-during{i:04}")
        );
    }
    assert!(matches!(
        store.get(&doomed).await,
        Err(SecretStoreError::NotFound)
    ));
    // No value is left under a retired key: a store that knows only the current keyring
    // reads all of them.
    let fresh = file_store(&dir);
    for n in names.iter() {
        fresh.get(n).await.unwrap();
    }
}

#[tokio::test]
async fn an_inline_key_cannot_be_rotated() {
    let dir = TempDir::new();
    let store =
        LocalSecretStore::open(dir.0.join("s"), KeySource::from_base64(KEY_A).unwrap()).unwrap();
    let err = rotate_key(&store).await.unwrap_err();
    assert!(
        err.to_string().contains("CONNECTOR__SECRETS__LOCAL_KEY"),
        "{err}"
    );
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}
