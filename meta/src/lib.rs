//! tessera-meta (skeleton)
