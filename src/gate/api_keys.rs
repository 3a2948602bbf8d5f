//! The server API's keys (SERVER_API_KEYS, SERVER_API_KEYS_FILE): kept only as SHA-256
//! digests, and a presented key is compared with every one of them in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::chat::ChatError;

/// Shortest key accepted: guessing must stay out of reach.
pub const MIN_KEY_LEN: usize = 16;

/// The keys that open the server API; none: the API is off.
#[derive(Clone, Default)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.digests.len())
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl ApiKeys {
    /// The keys of `list` (comma-separated) and of the file at `file` (one per line,
    /// `#` comments); an error names the setting and why.
    pub fn new(list: &str, file: &str) -> Result<Self, (&'static str, String)> {
        let mut keys: Vec<(&'static str, String)> = list
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| ("SERVER_API_KEYS", k.to_owned()))
            .collect();
        if !file.is_empty() {
            let text = std::fs::read_to_string(file)
                .map_err(|e| ("SERVER_API_KEYS_FILE", format!("cannot read {file}: {e}")))?;
            keys.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(|k| ("SERVER_API_KEYS_FILE", k.to_owned())),
            );
        }
        let mut digests = Vec::with_capacity(keys.len());
        for (setting, key) in keys {
            if key.len() < MIN_KEY_LEN {
                return Err((
                    setting,
                    format!("every key must be at least {MIN_KEY_LEN} characters"),
                ));
            }
            digests.push(digest(&key));
        }
        Ok(Self { digests })
    }

    /// Whether any key is set (the server API is on).
    pub fn enabled(&self) -> bool {
        !self.digests.is_empty()
    }

    /// Checks the `Authorization: Bearer` key a request presented.
    pub fn verify(&self, presented: Option<&str>) -> Result<(), ChatError> {
        let Some(presented) = presented.filter(|k| !k.is_empty()) else {
            return Err(ChatError::AuthFailed(
                "the server API needs an API key (Authorization: Bearer KEY)".into(),
            ));
        };
        let presented = digest(presented);
        // Every key is compared, whatever matched: the time taken says nothing.
        let matched = self
            .digests
            .iter()
            .fold(subtle::Choice::from(0), |any, d| any | d.ct_eq(&presented));
        if bool::from(matched) {
            Ok(())
        } else {
            Err(ChatError::AuthFailed("API key not accepted".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_the_list_and_the_file_open_the_api_and_nothing_else_does() {
        let dir = std::env::temp_dir().join(format!("chatwire-keys-{}", std::process::id()));
        std::fs::write(&dir, "# ops\nfile-key-0123456789abcdef\n\n").unwrap();
        let keys = ApiKeys::new(
            " list-key-0123456789abcdef , second-key-0123456789ab",
            dir.to_str().unwrap(),
        )
        .unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert!(keys.enabled());
        for good in [
            "list-key-0123456789abcdef",
            "second-key-0123456789ab",
            "file-key-0123456789abcdef",
        ] {
            assert_eq!(keys.verify(Some(good)), Ok(()));
        }
        for bad in [
            None,
            Some(""),
            Some("list-key-0123456789abcde"),
            Some("# ops"),
        ] {
            assert!(matches!(keys.verify(bad), Err(ChatError::AuthFailed(_))));
        }
        assert!(format!("{keys:?}").contains("3 keys"));
        assert!(!format!("{keys:?}").contains("list-key"));
    }

    #[test]
    fn short_keys_and_unreadable_files_are_refused_by_name() {
        assert_eq!(ApiKeys::new("short", "").unwrap_err().0, "SERVER_API_KEYS");
        assert_eq!(
            ApiKeys::new("", "/nonexistent/keys").unwrap_err().0,
            "SERVER_API_KEYS_FILE"
        );
        assert!(!ApiKeys::new("", "").unwrap().enabled());
    }
}
