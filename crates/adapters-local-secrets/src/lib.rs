//! A local, encrypted implementation of the [`SecretStore`] port, for the embedded mode.
//!
//! Each secret is one file in a directory, named by the SHA-256 of the secret's name, holding
//! JSON: the secret name, the ID of the key that encrypted it, a nonce and the ciphertext of
//! `{"bot_token": …}`. Encryption is AES-256-GCM with a fresh random 96-bit nonce per write;
//! the secret's name, which ends with the connector ID, is the associated data, so a
//! ciphertext copied to another connector's file fails authentication instead of decrypting.
//!
//! Keys ([`KeySource`]): either one key from `CONNECTOR__SECRETS__LOCAL_KEY` (base64 of 32
//! bytes), or a key file (JSON keyring, created with mode 0600 on first use) that
//! [`rotate_key`] can rotate while servers run: it adds a new active key, re-encrypts every
//! secret under it and drops keys nothing uses any more. Writers serialise on a lock file and
//! re-read the keyring under it, so no write made during a rotation stays under the old key;
//! readers take no lock (files are replaced by atomic renames) and reload the keyring when they
//! meet a key ID they do not know.
//!
//! Tampering with a file or using the wrong key fails loudly ([`SecretStoreError::Unknown`]
//! naming the secret), never silently.
//!
//! # Must never
//! Write a key or a token anywhere but the key file and the ciphertexts; log either; leave a
//! file half written (every write is a rename of a complete temporary file).

mod keyring;

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use connector_domain::{SecretName, SecretPrefix};
use connector_ports::{
    ConnectorSecret, SecretLabels, SecretStore, SecretStoreError, StagedVersion,
};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub use keyring::{KeySource, Keyring, LocalKeyError};

/// The store; cheap to clone.
#[derive(Clone)]
pub struct LocalSecretStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    source: KeySource,
    keyring: RwLock<Keyring>,
}

impl std::fmt::Debug for LocalSecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSecretStore")
            .field("dir", &self.inner.dir)
            .field("source", &self.inner.source)
            .finish_non_exhaustive()
    }
}

/// One stored secret, as written to disk.
#[derive(Serialize, Deserialize)]
struct Envelope {
    v: u32,
    name: String,
    key_id: String,
    nonce: String,
    ciphertext: String,
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationReport {
    /// The new active key's ID.
    pub new_key_id: String,
    /// Secrets re-encrypted under it.
    pub reencrypted: usize,
    /// Key IDs removed from the keyring because no secret uses them any more.
    pub retired: Vec<String>,
}

fn unknown(msg: String) -> SecretStoreError {
    SecretStoreError::Unknown(anyhow::Error::msg(msg))
}

fn io(context: &str, e: std::io::Error) -> SecretStoreError {
    unknown(format!("{context}: {e}"))
}

impl LocalSecretStore {
    /// Opens (creating it with mode 0700 if needed) the secrets directory `dir`, with keys from
    /// `source` (a key file is created with a fresh key on first use).
    pub fn open(dir: impl Into<PathBuf>, source: KeySource) -> Result<Self, LocalKeyError> {
        let dir = dir.into();
        keyring::create_private_dir(&dir)?;
        let keyring = source.load_or_create()?;
        Ok(Self {
            inner: Arc::new(Inner {
                dir,
                source,
                keyring: RwLock::new(keyring),
            }),
        })
    }

    /// The directory the secrets live in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn stem_of(name: &str) -> String {
        let digest = Sha256::digest(name.as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn path_of(&self, name: &str) -> PathBuf {
        self.inner
            .dir
            .join(format!("{}.secret.json", Self::stem_of(name)))
    }

    /// Where staged `version` of `name` waits for its promotion: beside the current file, so
    /// promoting it is one rename.
    fn staged_path_of(&self, name: &str, version: &str) -> PathBuf {
        self.inner
            .dir
            .join(format!("{}.staged-{version}.json", Self::stem_of(name)))
    }

    /// The staged versions of `name` on disk.
    fn staged_files_of(&self, name: &str) -> Result<Vec<PathBuf>, SecretStoreError> {
        let prefix = format!("{}.staged-", Self::stem_of(name));
        Ok(self
            .secret_files()?
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix))
            })
            .collect())
    }

    fn lock_path(&self) -> PathBuf {
        self.inner.dir.join(".write.lock")
    }

    /// Holds the writers' lock (across processes) while `f` runs.
    fn with_write_lock<T>(
        &self,
        f: impl FnOnce() -> Result<T, SecretStoreError>,
    ) -> Result<T, SecretStoreError> {
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.lock_path())
            .map_err(|e| io("opening the secrets lock file", e))?;
        lock.lock()
            .map_err(|e| io("locking the secrets directory", e))?;
        let result = f();
        let _ = lock.unlock();
        result
    }

    fn reload_keyring(&self) -> Result<(), SecretStoreError> {
        let fresh = self
            .inner
            .source
            .load_or_create()
            .map_err(|e| unknown(e.to_string()))?;
        *self
            .inner
            .keyring
            .write()
            .unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    fn encrypt(&self, name: &str, plaintext: &[u8]) -> Result<Envelope, SecretStoreError> {
        let keyring = self.inner.keyring.read().unwrap_or_else(|p| p.into_inner());
        let (key_id, key) = keyring.active();
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.expose_secret()));
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| unknown(format!("encrypting secret {name} failed")))?;
        Ok(Envelope {
            v: 1,
            name: name.to_owned(),
            key_id: key_id.to_owned(),
            nonce: B64.encode(nonce),
            ciphertext: B64.encode(ciphertext),
        })
    }

    fn decrypt(&self, name: &str, envelope: &Envelope) -> Result<Vec<u8>, SecretStoreError> {
        if envelope.name != name {
            return Err(unknown(format!(
                "secret file for {name} holds {:?}: the store was tampered with",
                envelope.name
            )));
        }
        let known = self
            .inner
            .keyring
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&envelope.key_id)
            .is_some();
        if !known {
            // Perhaps rotated by another process since we loaded the keyring.
            self.reload_keyring()?;
        }
        let keyring = self.inner.keyring.read().unwrap_or_else(|p| p.into_inner());
        let key = keyring.get(&envelope.key_id).ok_or_else(|| {
            unknown(format!(
                "secret {name} is encrypted under key {:?}, which the keyring does not hold: wrong key?",
                envelope.key_id
            ))
        })?;
        let nonce = B64
            .decode(&envelope.nonce)
            .ok()
            .filter(|n| n.len() == 12)
            .ok_or_else(|| {
                unknown(format!(
                    "secret {name} has a malformed nonce: tampered with?"
                ))
            })?;
        let ciphertext = B64.decode(&envelope.ciphertext).map_err(|_| {
            unknown(format!(
                "secret {name} has a malformed ciphertext: tampered with?"
            ))
        })?;
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.expose_secret()));
        cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| {
                unknown(format!(
                    "secret {name} failed authentication: it was tampered with or the key is wrong"
                ))
            })
    }

    fn read_envelope(&self, path: &Path) -> Result<Option<Envelope>, SecretStoreError> {
        match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|_| {
                unknown(format!(
                    "{} is not a secret file: tampered with?",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("reading a secret", e)),
        }
    }

    /// Writes `envelope` to `path` atomically: a complete temporary file (0600), then a rename.
    fn write_envelope(&self, path: &Path, envelope: &Envelope) -> Result<(), SecretStoreError> {
        let tmp = path.with_extension(format!("tmp-{}", rand::random::<u64>()));
        let bytes = serde_json::to_vec(envelope).map_err(|e| unknown(e.to_string()))?;
        let mut file = keyring::create_private_file(&tmp).map_err(|e| io("writing a secret", e))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| io("writing a secret", e))?;
        drop(file);
        fs::rename(&tmp, path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io("writing a secret", e)
        })?;
        // The rename is durable only once the directory is.
        keyring::sync_parent_dir(path).map_err(|e| io("writing a secret", e))
    }

    fn put_blocking(&self, name: &str, plaintext: &str) -> Result<(), SecretStoreError> {
        let plaintext = plaintext.as_bytes();
        let path = self.path_of(name);
        self.with_write_lock(|| {
            // Under the lock, so a rotation cannot slip between our keyring and our write.
            self.reload_keyring()?;
            let envelope = self.encrypt(name, plaintext)?;
            self.write_envelope(&path, &envelope)
        })
    }

    fn get_blocking(&self, name: &str) -> Result<ConnectorSecret, SecretStoreError> {
        let path = self.path_of(name);
        let envelope = self
            .read_envelope(&path)?
            .ok_or(SecretStoreError::NotFound)?;
        let plaintext = match self.decrypt(name, &envelope) {
            Ok(p) => p,
            // A rotation may have re-encrypted the file and retired its old key between our
            // read and our decrypt: read it once more before calling it a failure.
            Err(first) => match self.read_envelope(&path)? {
                Some(again) if again.key_id != envelope.key_id => self.decrypt(name, &again)?,
                _ => return Err(first),
            },
        };
        ConnectorSecret::from_json(&plaintext)
            .ok_or_else(|| unknown(format!("secret {name} does not hold a bot_token")))
    }

    fn delete_blocking(&self, name: &str) -> Result<(), SecretStoreError> {
        let path = self.path_of(name);
        self.with_write_lock(|| {
            // Staged versions first: none may outlive the secret.
            for staged in self.staged_files_of(name)? {
                remove_if_present(&staged)?;
            }
            remove_if_present(&path)?;
            // A delete is durable only once the directory is.
            keyring::sync_parent_dir(&path).map_err(|e| io("deleting a secret", e))
        })
    }

    fn stage_blocking(&self, name: &str, plaintext: &str) -> Result<String, SecretStoreError> {
        let version = format!("{:032x}", rand::random::<u128>());
        let current = self.path_of(name);
        let staged = self.staged_path_of(name, &version);
        self.with_write_lock(|| {
            if !current.exists() {
                return Err(SecretStoreError::NotFound);
            }
            self.reload_keyring()?;
            let envelope = self.encrypt(name, plaintext.as_bytes())?;
            self.write_envelope(&staged, &envelope)
        })?;
        Ok(version)
    }

    fn promote_blocking(&self, name: &str, version: &str) -> Result<bool, SecretStoreError> {
        if version.is_empty() || !version.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(false);
        }
        let current = self.path_of(name);
        let staged = self.staged_path_of(name, version);
        self.with_write_lock(|| {
            if !staged.exists() {
                return Ok(false);
            }
            // One rename: a reader opens the old file or the new one.
            fs::rename(&staged, &current).map_err(|e| io("promoting a secret version", e))?;
            keyring::sync_parent_dir(&current).map_err(|e| io("promoting a secret version", e))?;
            Ok(true)
        })
    }

    fn discard_blocking(&self, name: &str, version: &str) -> Result<bool, SecretStoreError> {
        if version.is_empty() || !version.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(false);
        }
        let staged = self.staged_path_of(name, version);
        self.with_write_lock(|| match fs::remove_file(&staged) {
            Ok(()) => {
                keyring::sync_parent_dir(&staged)
                    .map_err(|e| io("removing a staged secret version", e))?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io("removing a staged secret version", e)),
        })
    }

    fn staged_versions_blocking(
        &self,
        prefix: &SecretPrefix,
        staged_before: std::time::SystemTime,
        limit: u32,
    ) -> Result<Vec<StagedVersion>, SecretStoreError> {
        let mut found = Vec::new();
        for path in self.secret_files()? {
            if found.len() >= limit as usize {
                break;
            }
            let Some(version) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.split_once(".staged-"))
                .and_then(|(_, rest)| rest.strip_suffix(".json"))
                .map(str::to_owned)
            else {
                continue;
            };
            let old = fs::metadata(&path)
                .and_then(|m| m.modified())
                .is_ok_and(|at| at < staged_before);
            if !old {
                continue;
            }
            // The name is stored in the clear beside the ciphertext: no key is needed.
            let Some(envelope) = self.read_envelope(&path)? else {
                continue;
            };
            if let Some((tenant_id, connector_id)) = prefix.connector_of(&envelope.name) {
                found.push(StagedVersion {
                    tenant_id,
                    connector_id,
                    version,
                });
            }
        }
        Ok(found)
    }

    fn secret_files(&self) -> Result<Vec<PathBuf>, SecretStoreError> {
        let mut files = Vec::new();
        for entry in fs::read_dir(&self.inner.dir).map_err(|e| io("listing secrets", e))? {
            let path = entry.map_err(|e| io("listing secrets", e))?.path();
            if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.ends_with(".secret.json") || (n.contains(".staged-") && n.ends_with(".json"))
            }) {
                files.push(path);
            }
        }
        Ok(files)
    }

    /// Rotates the key file's keyring: see [`rotate_key`].
    fn rotate_blocking(&self) -> Result<RotationReport, SecretStoreError> {
        let new_key_id = self.with_write_lock(|| {
            let id = self
                .inner
                .source
                .add_active_key()
                .map_err(|e| unknown(e.to_string()))?;
            self.reload_keyring()?;
            Ok(id)
        })?;
        let mut reencrypted = 0;
        for path in self.secret_files()? {
            let done = self.with_write_lock(|| {
                // Re-read under the lock: a concurrent delete must not be undone.
                let Some(envelope) = self.read_envelope(&path)? else {
                    return Ok(false);
                };
                if envelope.key_id == new_key_id {
                    return Ok(false);
                }
                let plaintext = self.decrypt(&envelope.name, &envelope)?;
                let fresh = self.encrypt(&envelope.name, &plaintext)?;
                self.write_envelope(&path, &fresh)?;
                Ok(true)
            })?;
            reencrypted += usize::from(done);
        }
        let retired = self.with_write_lock(|| {
            let mut in_use = std::collections::HashSet::new();
            for path in self.secret_files()? {
                if let Some(e) = self.read_envelope(&path)? {
                    in_use.insert(e.key_id);
                }
            }
            let retired = self
                .inner
                .source
                .retire_keys_except(&in_use)
                .map_err(|e| unknown(e.to_string()))?;
            self.reload_keyring()?;
            Ok(retired)
        })?;
        Ok(RotationReport {
            new_key_id,
            reencrypted,
            retired,
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(LocalSecretStore) -> Result<T, SecretStoreError> + Send + 'static,
    ) -> Result<T, SecretStoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(store))
            .await
            .map_err(|e| unknown(format!("secret store task failed: {e}")))?
    }
}

fn remove_if_present(path: &Path) -> Result<(), SecretStoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("deleting a secret", e)),
    }
}

/// Rotates the key of the store: adds a new active key to the key file, re-encrypts every
/// secret under it, then drops the keys no secret uses. Servers may keep running meanwhile:
/// readers never see a half-written file, and writers pick up the new key.
pub async fn rotate_key(store: &LocalSecretStore) -> Result<RotationReport, SecretStoreError> {
    store.blocking(|s| s.rotate_blocking()).await
}

#[async_trait]
impl SecretStore for LocalSecretStore {
    async fn put(
        &self,
        name: &SecretName,
        secret: &ConnectorSecret,
        _labels: &SecretLabels,
    ) -> Result<(), SecretStoreError> {
        let name = name.as_str().to_owned();
        let plaintext = secret.to_json();
        self.blocking(move |s| s.put_blocking(&name, &plaintext))
            .await
    }

    async fn get(&self, name: &SecretName) -> Result<ConnectorSecret, SecretStoreError> {
        let name = name.as_str().to_owned();
        self.blocking(move |s| s.get_blocking(&name)).await
    }

    async fn delete(&self, name: &SecretName) -> Result<(), SecretStoreError> {
        let name = name.as_str().to_owned();
        self.blocking(move |s| s.delete_blocking(&name)).await
    }

    async fn stage(
        &self,
        name: &SecretName,
        secret: &ConnectorSecret,
    ) -> Result<String, SecretStoreError> {
        let name = name.as_str().to_owned();
        let plaintext = secret.to_json();
        self.blocking(move |s| s.stage_blocking(&name, &plaintext))
            .await
    }

    async fn promote(&self, name: &SecretName, version: &str) -> Result<bool, SecretStoreError> {
        let name = name.as_str().to_owned();
        let version = version.to_owned();
        self.blocking(move |s| s.promote_blocking(&name, &version))
            .await
    }

    async fn discard(&self, name: &SecretName, version: &str) -> Result<bool, SecretStoreError> {
        let name = name.as_str().to_owned();
        let version = version.to_owned();
        self.blocking(move |s| s.discard_blocking(&name, &version))
            .await
    }

    async fn staged_versions(
        &self,
        prefix: &SecretPrefix,
        staged_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<StagedVersion>, SecretStoreError> {
        let prefix = prefix.clone();
        let before = std::time::SystemTime::from(staged_before);
        self.blocking(move |s| s.staged_versions_blocking(&prefix, before, limit))
            .await
    }
}
