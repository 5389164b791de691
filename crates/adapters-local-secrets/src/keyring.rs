//! Where the local store's keys come from: one inline key, or a rotatable key file.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{KeyInit as _, OsRng};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::{ExposeSecret as _, SecretBox, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Problems with the keys.
#[derive(Debug, thiserror::Error)]
pub enum LocalKeyError {
    /// `CONNECTOR__SECRETS__LOCAL_KEY` is not base64 of 32 bytes.
    #[error(
        "secrets.local_key (CONNECTOR__SECRETS__LOCAL_KEY): must be the base64 of 32 random bytes (e.g. `openssl rand -base64 32`)"
    )]
    BadInlineKey,
    /// The key file is unreadable, malformed or too open.
    #[error("key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Rotation needs a key file.
    #[error(
        "the key comes from CONNECTOR__SECRETS__LOCAL_KEY, which cannot be rotated in place: use a key file (CONNECTOR__SECRETS__LOCAL_KEY_FILE) to rotate"
    )]
    CannotRotateInlineKey,
}

/// Where the keys come from.
#[derive(Clone)]
pub enum KeySource {
    /// One key, given as base64 (from `CONNECTOR__SECRETS__LOCAL_KEY`).
    Inline(SecretString),
    /// A JSON keyring file, created (mode 0600) with a fresh key on first use.
    File(PathBuf),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Inline(_) => f.write_str("KeySource::Inline([REDACTED])"),
            Self::File(p) => f.debug_tuple("KeySource::File").field(p).finish(),
        }
    }
}

type KeyBytes = SecretBox<[u8; 32]>;

/// The keys, by ID, and which one encrypts new values.
pub struct Keyring {
    active: String,
    keys: HashMap<String, KeyBytes>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<_> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("Keyring")
            .field("active", &self.active)
            .field("ids", &ids)
            .finish()
    }
}

impl Keyring {
    /// The active key and its ID.
    pub(crate) fn active(&self) -> (&str, &KeyBytes) {
        (
            &self.active,
            self.keys
                .get(&self.active)
                .expect("the active key is in the keyring"),
        )
    }

    /// The key with this ID.
    pub(crate) fn get(&self, id: &str) -> Option<&KeyBytes> {
        self.keys.get(id)
    }

    /// The IDs of every key, sorted.
    pub fn key_ids(&self) -> Vec<String> {
        let mut ids: Vec<_> = self.keys.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The active key's ID.
    pub fn active_id(&self) -> &str {
        &self.active
    }
}

/// The key file's JSON.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    active: String,
    keys: HashMap<String, String>,
}

fn decode_key(b64: &str) -> Option<[u8; 32]> {
    B64.decode(b64.trim()).ok()?.try_into().ok()
}

fn fresh_key() -> [u8; 32] {
    let key = Aes256Gcm::generate_key(&mut OsRng);
    let mut out = [0u8; 32];
    out.copy_from_slice(&key);
    out
}

/// A 128-bit random key ID: two rotations, even on different hosts, never collide.
fn fresh_key_id() -> String {
    format!("k{:032x}", rand::random::<u128>())
}

/// Makes a completed rename (or link) in `path`'s directory durable.
pub(crate) fn sync_parent_dir(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => fs::File::open(dir)?.sync_all(),
        None => fs::File::open(".")?.sync_all(),
    }
}

/// Creates `dir` (and parents), owner-only.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), LocalKeyError> {
    let err = |e: std::io::Error| LocalKeyError::KeyFile {
        path: dir.to_owned(),
        reason: format!("cannot create the directory: {e}"),
    };
    fs::create_dir_all(dir).map_err(err)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(err)
}

/// Creates a new file readable and writable by its owner only.
pub(crate) fn create_private_file(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

impl KeySource {
    /// An inline key from its base64 form.
    pub fn from_base64(b64: &str) -> Result<Self, LocalKeyError> {
        decode_key(b64).ok_or(LocalKeyError::BadInlineKey)?;
        Ok(Self::Inline(SecretString::from(b64.trim().to_owned())))
    }

    fn file_error(path: &Path, reason: impl Into<String>) -> LocalKeyError {
        LocalKeyError::KeyFile {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    /// Reads the keyring; a missing key file is created with one fresh key.
    pub fn load_or_create(&self) -> Result<Keyring, LocalKeyError> {
        match self {
            Self::Inline(b64) => {
                let key = decode_key(b64.expose_secret()).ok_or(LocalKeyError::BadInlineKey)?;
                let digest = Sha256::digest(key);
                let id = format!(
                    "inline-{:02x}{:02x}{:02x}{:02x}",
                    digest[0], digest[1], digest[2], digest[3]
                );
                Ok(Keyring {
                    active: id.clone(),
                    keys: HashMap::from([(id, SecretBox::new(Box::new(key)))]),
                })
            }
            Self::File(path) => {
                if !path.exists() {
                    self.create_key_file(path)?;
                }
                read_key_file(path)
            }
        }
    }

    fn create_key_file(&self, path: &Path) -> Result<(), LocalKeyError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)?;
        }
        let id = fresh_key_id();
        let file = KeyFile {
            active: id.clone(),
            keys: HashMap::from([(id, B64.encode(fresh_key()))]),
        };
        // Written completely under a temporary name, then linked into place: the link fails
        // if another process created the file first, and nobody ever reads a half-written key.
        let tmp = path.with_extension(format!("tmp-{}", rand::random::<u64>()));
        let bytes =
            serde_json::to_vec_pretty(&file).map_err(|e| Self::file_error(path, e.to_string()))?;
        let written = create_private_file(&tmp)
            .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
            .and_then(|()| fs::hard_link(&tmp, path));
        let _ = fs::remove_file(&tmp);
        match written {
            Ok(()) => {
                sync_parent_dir(path)
                    .map_err(|e| Self::file_error(path, format!("cannot sync: {e}")))?;
                tracing::info!(path = %path.display(), "created a new local secrets key file (mode 0600)");
                Ok(())
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(Self::file_error(path, format!("cannot create: {e}"))),
        }
    }

    /// Adds a fresh key and makes it active; returns its ID.
    pub(crate) fn add_active_key(&self) -> Result<String, LocalKeyError> {
        let Self::File(path) = self else {
            return Err(LocalKeyError::CannotRotateInlineKey);
        };
        let mut file = read_key_file_raw(path)?;
        let id = fresh_key_id();
        file.keys.insert(id.clone(), B64.encode(fresh_key()));
        file.active = id.clone();
        write_key_file(path, &file)?;
        Ok(id)
    }

    /// Removes every key but the active one and those in `in_use`; returns the removed IDs.
    pub(crate) fn retire_keys_except(
        &self,
        in_use: &HashSet<String>,
    ) -> Result<Vec<String>, LocalKeyError> {
        let Self::File(path) = self else {
            return Ok(Vec::new());
        };
        let mut file = read_key_file_raw(path)?;
        let active = file.active.clone();
        let mut retired: Vec<String> = file
            .keys
            .keys()
            .filter(|id| **id != active && !in_use.contains(*id))
            .cloned()
            .collect();
        retired.sort();
        if !retired.is_empty() {
            file.keys.retain(|id, _| !retired.contains(id));
            write_key_file(path, &file)?;
        }
        Ok(retired)
    }
}

fn read_key_file_raw(path: &Path) -> Result<KeyFile, LocalKeyError> {
    let meta =
        fs::metadata(path).map_err(|e| KeySource::file_error(path, format!("cannot read: {e}")))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeySource::file_error(
            path,
            format!("is accessible to other users (mode {mode:04o}); run `chmod 600` on it"),
        ));
    }
    let bytes =
        fs::read(path).map_err(|e| KeySource::file_error(path, format!("cannot read: {e}")))?;
    let file: KeyFile = serde_json::from_slice(&bytes)
        .map_err(|_| KeySource::file_error(path, "is not a slack-connector key file"))?;
    if !file.keys.contains_key(&file.active) {
        return Err(KeySource::file_error(path, "its active key is missing"));
    }
    Ok(file)
}

fn read_key_file(path: &Path) -> Result<Keyring, LocalKeyError> {
    let file = read_key_file_raw(path)?;
    let mut keys = HashMap::new();
    for (id, b64) in &file.keys {
        let key = decode_key(b64).ok_or_else(|| {
            KeySource::file_error(path, format!("key {id} is not 32 bytes of base64"))
        })?;
        keys.insert(id.clone(), SecretBox::new(Box::new(key)));
    }
    Ok(Keyring {
        active: file.active,
        keys,
    })
}

/// Replaces the key file atomically (a complete 0600 temporary file, then a rename).
fn write_key_file(path: &Path, file: &KeyFile) -> Result<(), LocalKeyError> {
    let tmp = path.with_extension(format!("tmp-{}", rand::random::<u64>()));
    let bytes =
        serde_json::to_vec_pretty(file).map_err(|e| KeySource::file_error(path, e.to_string()))?;
    let result = create_private_file(&tmp)
        .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&tmp, path))
        .and_then(|()| sync_parent_dir(path));
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        KeySource::file_error(path, format!("cannot write: {e}"))
    })
}
