//! Progress reporting: a small trait the caller implements (the CLI with
//! progress bars); [`NoProgress`] ignores everything.

/// Receives progress of long operations. All methods have no-op defaults.
pub trait Progress: Send + Sync {
    /// A new phase starts (`"scanning"`, `"archiving"`, `"verifying"`,
    /// `"extracting"`...), with its total in bytes when known.
    fn phase(&self, _name: &str, _total: Option<u64>) {}
    /// `bytes` more were processed in the current phase.
    fn advance(&self, _bytes: u64) {}
    /// An item (file, entry) was handled in the current phase.
    fn item(&self, _name: &str) {}
    /// Something worth telling the user that does not stop the operation.
    fn warn(&self, _message: &str) {}
    /// The operation is over (successfully or not).
    fn finish(&self) {}
}

/// A [`Progress`] that reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
