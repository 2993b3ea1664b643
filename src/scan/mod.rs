//! The model-file scanner (`vigil scan`): reads model files as data, never loads them, and
//! reports what they would import or call.
//!
//! So far: [`pickle`], an exact non-executing pickle VM. Containers (PyTorch zip, joblib,
//! NumPy, Keras), the allow-list policy and the CLI come next.

pub mod pickle;
