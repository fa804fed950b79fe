//! tessera-ec (skeleton)
