//! Reading a value an earlier filter verified (`auth.trusted`): a request header, or dynamic
//! metadata the shell reads from the host.

use super::header_changes::header_in;
use crate::auth::TrustedSource;

/// The value of `source`: from `headers` (as read), or from the property path
/// `metadata.filter_metadata.<path>` through `property` (the host read; `None` when absent
/// or unreadable). Non-UTF-8 metadata is read lossily.
pub fn read_trusted(
    source: &TrustedSource,
    headers: &[(String, String)],
    property: impl FnOnce(&[&str]) -> Option<Vec<u8>>,
) -> Option<String> {
    match source {
        TrustedSource::Header(name) => header_in(headers, name).map(str::to_string),
        TrustedSource::Metadata(path) => {
            let mut full: Vec<&str> = vec!["metadata", "filter_metadata"];
            full.extend(path.iter().map(String::as_str));
            let bytes = property(&full)?;
            Some(String::from_utf8_lossy(&bytes).into_owned())
        }
    }
}
