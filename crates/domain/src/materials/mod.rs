//! Teacher materials: files (documents, images, audio, video) streamed into object storage,
//! links and notes, with per-teacher quotas.

mod model;

pub use model::{
    MaterialChanges, MaterialKind, MaterialPage, MaterialQuery, MaterialRecord, Quota,
};
