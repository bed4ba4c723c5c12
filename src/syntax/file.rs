//! Reading a file from disk with the size limit: the one reader every file goes through
//! (`cli` playbooks, scenario files, playbooks named by scenarios).
//!
//! The limit is enforced while reading, not from `metadata().len()`: that is 0 for
//! `/dev/zero`, a FIFO or `/proc` files, which would otherwise be read without end.
//! No parsing here.

use std::io::Read;
use std::path::Path;

use super::MAX_FILE_BYTES;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The operating system refused (missing file, permissions, a folder…).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// More than [`MAX_FILE_BYTES`] bytes; reading stopped there.
    #[error(
        "the file is larger than {MAX_FILE_BYTES} bytes (10 MiB), the most a playbook or scenario may be"
    )]
    TooLarge,
}

/// Reads at most [`MAX_FILE_BYTES`] bytes of `path`; one byte more is [`ReadError::TooLarge`].
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, ReadError> {
    let limit = MAX_FILE_BYTES as u64;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge);
    }
    Ok(bytes)
}

/// [`read_bytes`], then UTF-8 (an invalid file is an [`std::io::ErrorKind::InvalidData`]
/// error, as with [`std::fs::read_to_string`]).
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    let bytes = read_bytes(path)?;
    String::from_utf8(bytes).map_err(|e| {
        ReadError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "the file is not valid UTF-8 (at byte {})",
                e.utf8_error().valid_up_to()
            ),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_a_length_is_still_bounded() {
        // `/dev/zero` reports length 0 and never ends.
        let zero = Path::new("/dev/zero");
        if zero.exists() {
            assert!(matches!(read_bytes(zero), Err(ReadError::TooLarge)));
        }
    }

    #[test]
    fn a_file_at_the_limit_is_read_and_one_byte_more_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("at");
        std::fs::write(&at, vec![b' '; MAX_FILE_BYTES]).unwrap();
        assert_eq!(read_bytes(&at).unwrap().len(), MAX_FILE_BYTES);
        let over = dir.path().join("over");
        std::fs::write(&over, vec![b' '; MAX_FILE_BYTES + 1]).unwrap();
        assert!(matches!(read_bytes(&over), Err(ReadError::TooLarge)));
        assert!(matches!(read_text(dir.path()), Err(ReadError::Io(_))));
    }
}
