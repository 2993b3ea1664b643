//! Renderers of a [`ScanReport`]: [`text`] for people, [`json`] (with a
//! schema version) for tools, [`sarif`] (2.1.0) for code-scanning UIs.

mod json;
mod sarif;
mod text;

pub use json::{json, JSON_SCHEMA_VERSION};
pub use sarif::sarif;
pub use text::text;
